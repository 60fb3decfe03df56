"""Reading an .npz from an untrusted source without allocating what its headers claim.

numpy.load trusts an archive: a member whose .npy header declares 10^12 elements is allocated
before a byte is read, and a deflated member may expand without limit (a zip bomb). read_npz
checks every member first: the header's shape x itemsize must equal the member's declared size,
that size must fit in the file (stored members) or within MAX_RATIO of its compressed size
(deflated ones), and only plain numeric and text dtypes are read. Each refusal is a
CheckpointError with one line naming the file and the member.
"""
import math
import os
import struct
import zipfile

import numpy as np
from numpy.lib import format as npy

from .errors import CheckpointError

MAX_RATIO = 200            # deflate reaches ~1000:1 only on runs of one byte; weights compress ~1.1:1
SMALL = 1 << 20            # members under 1 MiB are never a bomb worth refusing
KINDS = "biufU"            # bool, integers, floats, unicode text (the metadata)


def _header(f, path, name):
    try:
        version = npy.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = npy.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npy.read_array_header_2_0(f)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise CheckpointError(f"{path}: member {name} has no readable .npy header ({_short(e)})") from None
    return shape, fortran, dtype, f.tell()


def shown(name):
    """A member's name for a one-line message (escaped where it holds control characters)."""
    return name if name.isprintable() else repr(name)


def _short(e):
    s = str(e).splitlines()[0] if str(e) else type(e).__name__
    return s[:120]


def _check_member(zf, info, path, file_size):
    name = shown(info.filename)
    if not info.filename.endswith(".npy"):
        raise CheckpointError(f"{path}: member {name} is not an array (.npy)")
    if info.compress_type == zipfile.ZIP_STORED:
        if info.file_size > file_size:
            raise CheckpointError(f"{path}: member {name} claims {info.file_size:,} bytes in a "
                                  f"{file_size:,}-byte file")
    elif info.file_size > SMALL and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise CheckpointError(f"{path}: member {name} expands {info.compress_size:,} bytes to "
                              f"{info.file_size:,} (a zip bomb?); refusing to load it")
    with zf.open(info) as f:
        shape, fortran, dtype, start = _header(f, path, name)
    if dtype.hasobject:
        raise CheckpointError(f"{path} holds pickled objects; refusing to load it")
    if dtype.kind not in KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise CheckpointError(f"{path}: member {name} has dtype {dtype}, which no checkpoint holds")
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise CheckpointError(f"{path}: member {name} has a malformed shape {shape!r}")
    declared = math.prod(shape) * dtype.itemsize
    if declared != info.file_size - start:
        raise CheckpointError(f"{path}: member {name} declares shape {shape} ({declared:,} bytes) "
                              f"but holds {max(info.file_size - start, 0):,}")


def read_npz(path):
    """{name: array} of the .npz at path, every member checked before it is read (see above)."""
    try:
        file_size = os.path.getsize(path)
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = [i.filename[:-4] for i in infos]
            if len(set(names)) != len(names):
                raise CheckpointError(f"{path} names a member twice")
            for info in infos:
                _check_member(zf, info, path, file_size)
            out = {}
            for name, info in zip(names, infos):
                with zf.open(info) as f:
                    out[name] = npy.read_array(f, allow_pickle=False)
            return out
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, KeyError,
            NotImplementedError, RuntimeError, struct.error, OverflowError, MemoryError, IndexError, TypeError) as e:
        raise CheckpointError(f"{path} is not a readable .npz checkpoint ({type(e).__name__}: {_short(e)})") from None
