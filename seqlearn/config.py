"""The training configuration, declared once.

OPTIONS holds every option of a training run: its name, default, type, bounds, choices, help text
and group. From it come the trainer's DEFAULTS and validation (check), the order of the keys in
config.json, the options that --resume may change, and the options of `seqlearn train`
(cli/options.py builds them).
"""
from typing import NamedTuple

from .backends import NAMES as DEVICES
from .model import CELLS, DTYPES, VARIANTS
from .optim import CLIP_MODES, OPTIMIZERS, SCHEDULES
from .rundir import TrainingError

DEFAULT_STEPS = 2000          # when none of steps / epochs / max_time is given


class Option(NamedTuple):
    """One training option.

    type: int, float, bool, str or "duration" (seconds; the CLI also takes 90s, 3m, 1.5h).
    low, high: bounds (low_open, high_open: the bound itself is excluded).
    must_be: set where the trainer checks the bounds too (the CLI checks all of them); the words
    of its error, "<name> must be <must_be>". size: an array size, so a Python int.
    resume: --resume may change it. cli: False where `seqlearn train` has no option for it."""
    name: str
    default: object
    type: object
    group: str
    help: str = None
    choices: tuple = None
    low: float = None
    high: float = None
    low_open: bool = False
    high_open: bool = False
    must_be: str = None
    size: bool = False
    resume: bool = False
    cli: bool = True

    def invalid(self, v):
        """Whether the trainer refuses v (only options with must_be are checked)."""
        if self.size and not isinstance(v, int):
            return True
        if v is None and self.default is None:
            return False
        # written so that NaN passes a closed low bound and fails an open one, as the trainer always did
        if self.low is not None and (not v > self.low if self.low_open else v < self.low):
            return True
        return self.high is not None and not (v < self.high if self.high_open else v <= self.high)


_SIZE = dict(low=1, must_be="a positive integer", size=True)
_COUNT = dict(low=1, must_be="a positive integer")

OPTIONS = (
    # model
    Option("cell", "lstm", str, "model", "Recurrent cell.", choices=CELLS),
    Option("gru_variant", "torch", str, "model",
           "torch: reset after the hidden product (PyTorch/cuDNN); cho: before it (the lecture's).",
           choices=VARIANTS),
    Option("peephole", False, bool, "model", "Diagonal peephole connections (lstm only)."),
    Option("hidden", 128, int, "model", "Hidden size H.", **_SIZE),
    Option("layers", 2, int, "model", "Number of stacked recurrent layers L.", **_SIZE),
    Option("embed", 0, int, "model", "Embedding size E (0: one-hot input).", low=0,
           must_be="0 (one-hot) or positive"),
    Option("dropout", 0.0, float, "model", "Dropout between recurrent layers.", low=0, high=1, high_open=True,
           must_be="in [0, 1)"),
    Option("dropout_top", None, float, "model", "Dropout on the top layer's output, before the head "
           "[default: --dropout].", low=0, high=1, high_open=True, must_be="in [0, 1)"),
    Option("dtype", "float32", str, "model", choices=DTYPES),
    # data
    Option("text", None, str, "data", cli=False),          # the TEXT argument of seqlearn train
    Option("encoding", "utf-8", str, "data", "Text encoding of TEXT."),
    Option("val_frac", 0.1, float, "data", "Fraction of the text (its tail) held out for validation.",
           low=0, high=1, high_open=True),
    Option("seq_len", 50, int, "data", "Time steps per batch (truncated BPTT length).", **_SIZE),
    Option("batch", 50, int, "data", "Parallel streams per batch.", **_SIZE),
    # optimizer
    Option("optimizer", "adam", str, "optimizer", choices=OPTIMIZERS),
    Option("lr", None, float, "optimizer",
           "Learning rate [default: 2e-3 for adam/adamw/rmsprop, 0.05 adagrad, 0.1 sgd].", low=0, low_open=True),
    Option("momentum", 0.0, float, "optimizer", "SGD momentum.", low=0),
    Option("nesterov", False, bool, "optimizer", "Nesterov momentum (sgd)."),
    Option("weight_decay", 0.0, float, "optimizer", "L2 penalty (adamw: decoupled weight decay).", low=0),
    Option("clip", 5.0, float, "optimizer", "Gradient clipping threshold (0: off).", low=0),
    Option("clip_mode", "norm", str, "optimizer", "norm: rescale by the global L2 norm; value: clamp each entry.",
           choices=CLIP_MODES),
    # schedule
    Option("schedule", "constant", str, "schedule",
           "step: multiply by --lr-decay each epoch from --lr-decay-after on; cosine: to 0 at the end.",
           choices=SCHEDULES),
    Option("warmup", 0, int, "schedule", "Linear warmup steps.", low=0),
    Option("lr_decay", 0.97, float, "schedule", low=0, high=1, low_open=True),
    Option("lr_decay_after", 10, int, "schedule", "First epoch whose end decays the rate (step schedule).",
           low=0),
    # length and reporting
    Option("steps", None, int, "run", f"Total steps of the run (also when resuming) [default: {DEFAULT_STEPS} "
           "when neither --epochs nor --max-time is given].", resume=True, **_COUNT),
    Option("epochs", None, int, "run", "Stop after this many epochs.", resume=True, **_COUNT),
    Option("max_time", None, "duration", "run",
           "Stop after this much time in this invocation (90, 90s, 3m, 1.5h).", low=0, low_open=True,
           must_be="positive", resume=True),
    Option("eval_every", 200, int, "run", "Validate, checkpoint and print a sample every N steps.",
           resume=True, **_COUNT),
    Option("log_every", 10, int, "run", "Log a line and a metrics.jsonl record every N steps.",
           resume=True, **_COUNT),
    Option("sample_len", 200, int, "run", cli=False),
    Option("sample_temperature", 0.8, float, "run", cli=False),
    Option("seed", 0, int, "run"),
    Option("device", "cpu", str, "run", "Backend: cpu (Numba), cuda (numba.cuda GPU) or ref (numpy).",
           choices=DEVICES, resume=True),
)

BY_NAME = {o.name: o for o in OPTIONS}
DEFAULTS = {o.name: o.default for o in OPTIONS}
RESUME_OVERRIDES = tuple(o.name for o in OPTIONS if o.resume)


def group(name):
    """The names of the options of one group, in declaration order."""
    return tuple(o.name for o in OPTIONS if o.group == name)


def check(config):
    """Raise TrainingError for an unknown option or a value that its declaration refuses."""
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise TrainingError(f"unknown training options {unknown}")
    for o in OPTIONS:
        v = config[o.name]
        if o.must_be is not None and o.invalid(v):
            got = repr(v) if o.size else v
            raise TrainingError(f"{o.name.replace('_', '-')} must be {o.must_be}, got {got}")


def with_defaults(config):
    """config over DEFAULTS (keys in declaration order), checked."""
    c = dict(DEFAULTS)
    c.update(config)
    check(c)
    return c


def resumed(config, overrides):
    """A saved run's config with the options that --resume may change replaced (None keeps the saved
    value); new limits (steps, epochs, max_time) replace all the old ones."""
    bad = [k for k in overrides if k not in RESUME_OVERRIDES]
    if bad:
        raise TrainingError(f"--resume takes the configuration from the run; cannot change {bad}")
    config = dict(config)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if any(k in overrides for k in ("steps", "epochs", "max_time")):
        config.update(steps=None, epochs=None, max_time=None)
    config.update(overrides)
    return config
