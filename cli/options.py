"""Options shared by several commands, defined once; those that are training options are built from
their declaration in seqlearn/config.py."""
import os
import re
import sys

import click

from seqlearn.config import BY_NAME


class Duration(click.ParamType):
    """Seconds as a number, or with a unit: 90, 90s, 3m, 1.5h."""
    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(value))
        if not m or float(m.group(1)) <= 0:
            self.fail(f"{value!r} is not a positive duration (for example 90, 90s, 3m, 1.5h)", param, ctx)
        return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def _click_type(o):
    if o.type == "duration":
        return Duration()
    if o.choices is not None:
        return click.Choice(o.choices)
    if o.low is not None or o.high is not None:
        kind = click.IntRange if o.type is int else click.FloatRange
        return kind(o.low, o.high, min_open=o.low_open, max_open=o.high_open)
    return o.type


def config_option(name, **overrides):
    """The option --NAME of the training option NAME (seqlearn.config.OPTIONS); overrides replace
    click.option's arguments (default, help, ...)."""
    o = BY_NAME[name]
    flag = "--" + name.replace("_", "-")
    decl = f"{flag}/--no-{flag[2:]}" if o.type is bool else flag
    kw = {"default": o.default, "show_default": o.default is not None, "help": o.help}
    if o.type is not bool:
        kw["type"] = _click_type(o)
    kw.update(overrides)
    return click.option(decl, **kw)


def config_options(*names):
    """config_option for each name, in this order on --help."""
    def decorate(fn):
        for name in reversed(names):
            fn = config_option(name)(fn)
        return fn
    return decorate


ARCHITECTURE = ("cell", "gru_variant", "peephole", "hidden", "layers", "embed")


def model_options(fn=None, **defaults):
    """--cell --gru-variant --peephole --hidden --layers --embed; defaults: other defaults (hidden=8)"""
    if fn is None:
        return lambda f: model_options(f, **defaults)
    for name in reversed(ARCHITECTURE):
        fn = config_option(name, **({"default": defaults[name]} if name in defaults else {}))(fn)
    return fn


def device_option(**overrides):
    return config_option("device", **overrides)


def set_threads(n):
    """The cpu backend's worker threads, before or after seqlearn.cpu is imported."""
    os.environ["SEQLEARN_NUM_THREADS"] = str(n)           # read when seqlearn.cpu is imported
    threads = sys.modules.get("seqlearn.cpu._threads")
    if threads is not None:                               # already imported: set it now
        threads.set_num_threads(n)


def _set_threads(ctx, param, value):
    if value is not None:
        set_threads(value)
    return value


def threads_option():
    """--threads N: worker threads of the cpu backend (like OMP_NUM_THREADS / torch.set_num_threads)."""
    return click.option("--threads", type=click.IntRange(min=1), default=None, expose_value=False,
                        callback=_set_threads,
                        help="Threads of the cpu backend [default: the CPUs this process may use, or "
                             "SEQLEARN_NUM_THREADS; under MPI, the rank's share of its node].")


def check_output(path, inputs):
    """An output file must not be one of the command's inputs (it would be overwritten), and its
    folder must exist."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise click.UsageError(f"cannot write {path}: {folder} is not a folder")
    for src in inputs:
        if os.path.exists(path) and os.path.exists(src) and os.path.samefile(path, src):
            raise click.UsageError(f"{path} is an input of this command; name another output file")
