"""Non-recurrent pieces in numpy: input projections, embedding lookup, dropout, array helpers."""
import math

import numpy as np


def zeros(shape, dtype):
    return np.zeros(shape, dtype)


def to_device(a):
    return np.ascontiguousarray(a)


def to_host(a):
    return np.asarray(a)


def project_onehot(W_ih, b_ih, x, out):
    """out[t, b] = W_ih[:, x[t, b]] + b_ih: a one-hot input's projection is a column gather."""
    out[...] = W_ih.T[x] + b_ih


def onehot_input(W_ih, b_ih, x, out):
    """The input projection of a one-hot layer as the recurrent forward takes it: out, written by
    project_onehot."""
    project_onehot(W_ih, b_ih, x, out)
    return out


def project_onehot_backward(dout, x, dW_ih, db_ih):
    T, B, GH = dout.shape
    flat = dout.reshape(T * B, GH)
    dWt = np.zeros((dW_ih.shape[1], GH), dout.dtype)
    np.add.at(dWt, x.reshape(-1), flat)
    dW_ih += dWt.T
    db_ih += flat.sum(0)


def linear(x, W, b, out):
    """out = x @ W.T + b for x (N, I), W (O, I)."""
    out[...] = x @ W.T + b


def linear_backward(dout, x, W, dx, dW, db):
    """Accumulate dW, db; write dx = dout @ W unless dx is None."""
    dW += dout.T @ x
    db += dout.sum(0)
    if dx is not None:
        dx[...] = dout @ W


def lookup(E, x, out):
    out[...] = E[x]


def lookup_backward(dout, x, dE):
    np.add.at(dE, x.reshape(-1), dout.reshape(-1, dE.shape[1]))


def mul(a, b, out):
    np.multiply(a, b, out=out)


# Dropout masks come from a counter-based hash of (key, element index): SplitMix64's output
# function applied to key + (i + 1) * MASK_GAMMA, the element kept when its top MASK_BITS bits are
# below round(keep * 2^MASK_BITS). Every backend computes the same mask for the same key (the cpu
# and cuda kernels repeat this arithmetic), and no backend draws T*B*H numbers on the host or
# copies them to a device: the model draws one 63-bit key per mask from its generator.
MASK_GAMMA = 0x9E3779B97F4A7C15
MASK_M1 = 0xBF58476D1CE4E5B9
MASK_M2 = 0x94D049BB133111EB
MASK_BITS = 24


def mask_args(key, keep, dtype):
    """(key, threshold, scale) as the mask kernels take them: uint64 key and threshold, and the
    kept elements' value 1 / keep rounded as the array's dtype divides (float64 holds it exactly)."""
    dt = np.dtype(dtype).type
    return np.uint64(key), np.uint64(round(keep * (1 << MASK_BITS))), float(dt(1) / dt(keep))


def mask_geometry(shape, rows=None):
    """(n, row, off) of the mask kernels for a mask of shape (T, b, ...): element i of it is element
    (i // n) * row + off + i % n of the whole batch's mask. rows=(b0, B): these are streams
    b0..b0+b of B (one rank's share, seqlearn/dist.py), so every rank draws its slice of the mask
    one process with all B streams would draw; None: the whole mask (element i is itself)."""
    size = math.prod(shape)
    if rows is None or not size:
        return max(size, 1), max(size, 1), 0
    b0, B = rows
    n = size // shape[0]
    unit = n // shape[1]
    return n, B * unit, b0 * unit


def dropout_mask(key, keep, out, rows=None):
    """out[...] = 1 / keep where element i (C order) is kept, else 0 (see MASK_GAMMA); rows: see
    mask_geometry."""
    k, thr, scale = mask_args(key, keep, out.dtype)
    n, row, off = mask_geometry(out.shape, rows)
    i = np.arange(out.size, dtype=np.uint64)
    g = (i // np.uint64(n)) * np.uint64(row) + np.uint64(off) + i % np.uint64(n)
    with np.errstate(over="ignore"):
        z = k + (g + np.uint64(1)) * np.uint64(MASK_GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(MASK_M1)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(MASK_M2)
        z ^= z >> np.uint64(31)
    kept = (z >> np.uint64(64 - MASK_BITS)) < thr
    out[...] = np.where(kept, out.dtype.type(scale), out.dtype.type(0)).reshape(out.shape)


def copy(src, dst):
    dst[...] = src


def copy_new(a):
    return a.copy()


def fill_zero(a):
    a[...] = 0
