"""The library's expected failures: each means "this input or this machine cannot do that", and the
CLI prints it as one line (cli/errors.py). TrainingError lives with the run directory (rundir.py)."""


class BackendError(RuntimeError):
    """A backend that cannot be used here (unknown name, no CUDA GPU)."""


class CheckpointError(ValueError):
    """A file that is not a readable seqlearn checkpoint."""


class DataError(ValueError):
    """Text that cannot be used (missing, empty, binary, undecodable, too small)."""
