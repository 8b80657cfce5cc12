"""File names inside a run directory, shared by training, loading and the CLI."""

__all__ = ["CARD_FILE", "CHECKPOINT_FILE", "FEATURES_FILE", "LOCK_FILE", "LOG_FILE", "RUN_FILES",
           "SAMPLES_GLOB", "SAMPLES_PATTERN", "SAMPLES_REGEX", "TENSORBOARD_DIR", "TENSORBOARD_EVENTS_REGEX",
           "WEIGHTS_FILE", "WRITE_PROBE"]

CARD_FILE = "card.json"             # the card, for people and tools that do not read safetensors
WEIGHTS_FILE = "generator.safetensors"  # EMA generator weights, card in the metadata
CHECKPOINT_FILE = "checkpoint.pt"   # everything needed to resume: nets, optimizers, RNG, step
LOG_FILE = "log.csv"                # losses per step
FEATURES_FILE = "feature_net.pt"     # fit --eval-every: the feature network of its quality metrics
SAMPLES_PATTERN = "samples_{step:06d}.png"  # grids from fixed noise, one row per class
SAMPLES_GLOB = "samples_*.png"
SAMPLES_REGEX = r"samples_\d{6,}\.png"  # SAMPLES_PATTERN's names: six digits, more past step 999999
LOCK_FILE = ".synthaug.lock"        # held (fcntl.flock) by the one process writing the run; holds its pid
WRITE_PROBE = ".synthaug-write-test"  # created and removed at once to check the directory is writable
TENSORBOARD_DIR = "tensorboard"    # fit log="tensorboard": TensorBoard's event files, nothing else
TENSORBOARD_EVENTS_REGEX = r"events\.out\.tfevents\.[\w.\-]+"  # the names TensorBoard gives them
#: What fit writes directly into a run directory (sample grids and temp files come on top).
RUN_FILES = (CARD_FILE, WEIGHTS_FILE, CHECKPOINT_FILE, LOG_FILE, FEATURES_FILE)
