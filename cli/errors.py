"""Turn the library's expected failures into one-line click errors (no traceback)."""
import functools
import os
import sys
import traceback

import click

from seqlearn.errors import BackendError, CheckpointError


def _mpi_world():
    """The MPI world of this process where one with several ranks is running, else None."""
    dist = sys.modules.get("seqlearn.dist")
    w = dist and dist._world
    return w if w is not None and w.size > 1 else None


def friendly(fn):
    """Decorator: ValueError, CheckpointError, BackendError, MemoryError and OSError become
    ClickException. Over MPI ranks (seqlearn/dist.py) an error that every rank raised together is
    printed by rank 0 alone and each rank exits; any other error (one rank's) is printed with its
    rank and ends the whole job (MPI_Abort), since the other ranks wait for this one."""
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return _as_click(fn, *a, **kw)
        except click.exceptions.Exit:       # ctx.exit(code): every rank leaves on its own
            raise
        except (KeyboardInterrupt, Exception) as e:    # ClickException included
            w = _mpi_world()
            if w is None:
                raise
            if getattr(e, "all_ranks", False):
                if w.root:
                    raise
                raise SystemExit(1) from None
            if isinstance(e, click.ClickException):
                what = e.format_message()
            elif isinstance(e, KeyboardInterrupt):
                what = "interrupted"
            else:                           # a bug: its traceback, then the job ends
                traceback.print_exc()
                what = f"{type(e).__name__}: {e}"
            click.echo(f"Error: {'' if w.root else f'rank {w.rank}: '}{what}", err=True)
            sys.stderr.flush()
            w.abort(1)
    return wrapper


_BREAKS = {c: repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def one_line(msg):
    """msg with the characters that break a line (str.splitlines's) shown escaped: a file name
    holding one must not split the error."""
    return "".join(_BREAKS.get(c, c) for c in msg)


def _click(msg, e):
    """A ClickException of msg that keeps e's mark of an error every rank raised (dist.py)."""
    out = click.ClickException(one_line(msg))
    out.all_ranks = getattr(e, "all_ranks", False)
    return out


def _as_click(fn, *a, **kw):
    """fn(*a, **kw) with its expected failures as one-line ClickExceptions."""
    try:
        return fn(*a, **kw)
    except click.ClickException as e:
        e.message = one_line(e.message)
        raise
    except BrokenPipeError:         # the reader went away (| head): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    except (ValueError, CheckpointError, BackendError) as e:
        raise _click(str(e), e) from None
    except MemoryError as e:        # numpy names the size it could not allocate
        raise _click(f"out of memory: {e or 'an allocation failed'}", e) from None
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        raise _click(f"{where}{e.strerror or e}", e) from None
