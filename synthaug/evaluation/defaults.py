"""Default settings of ``synthaug eval``, in a module light enough for the CLI to import at start."""

__all__ = ["DEFAULT_DOSES", "DEFAULT_REFERENCE_STEPS", "DEFAULT_STEPS", "DEFAULT_TEST_FRACTION"]

DEFAULT_DOSES = (0.0, 0.1, 0.25, 0.5)
#: Optimiser steps of every downstream-gain arm (batch 64): about 19 epochs of digits:train.
DEFAULT_STEPS = 400
#: Steps of the feature network and of both CAS arms.
DEFAULT_REFERENCE_STEPS = 600
#: Share of each class held out for testing when no test set is given.
DEFAULT_TEST_FRACTION = 0.25
