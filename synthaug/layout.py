"""File names inside a run directory, shared by training, loading and the CLI."""

CARD_FILE = "card.json"             # the card, for people and tools that do not read safetensors
WEIGHTS_FILE = "generator.safetensors"  # EMA generator weights, card in the metadata
CHECKPOINT_FILE = "checkpoint.pt"   # everything needed to resume: nets, optimizers, RNG, step
LOG_FILE = "log.csv"                # losses per step
SAMPLES_PATTERN = "samples_{step:06d}.png"  # grids from fixed noise, one row per class
