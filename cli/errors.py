"""Turn the library's expected failures into one-line click errors (no traceback)."""
import functools
import os
import sys

import click

from seqlearn.errors import BackendError, CheckpointError


def friendly(fn):
    """Decorator: ValueError, CheckpointError, BackendError, MemoryError and OSError become ClickException."""
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except click.ClickException:
            raise
        except BrokenPipeError:         # the reader went away (| head): stop quietly, as cat does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(1) from None
        except (ValueError, CheckpointError, BackendError) as e:
            raise click.ClickException(str(e)) from None
        except MemoryError as e:        # numpy names the size it could not allocate
            raise click.ClickException(f"out of memory: {e or 'an allocation failed'}") from None
        except OSError as e:
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            raise click.ClickException(f"{where}{e.strerror or e}") from None
    return wrapper
