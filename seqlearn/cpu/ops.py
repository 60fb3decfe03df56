"""Non-recurrent pieces, jitted where they compute: input projections (a one-hot input's
projection is a row gather), embedding lookup, dropout mask product. Products go through the
backend's BLAS (_blas.rgemm), split over the worker threads by rows.

``onehot_input`` does not write the projection (T, B, G*H): it returns a ``OneHot`` (the table of
W_ih's columns with b_ih added, one row per character, and the characters), and the recurrent time
loops read each step's row from the table (``input_rows``). The projection of a one-hot layer was the
step's largest buffer: writing it and reading it back pushed the step's data out of the shared L3
cache (docs/performance.md, "How the cpu backend spends the cores")."""
from typing import NamedTuple

import numpy as np

from . import _threads
from ._blas import N_, T_, consts, rgemm
from ._jit import jit
from .wgrad import wgrad
from ..ref.ops import MASK_BITS, MASK_GAMMA, MASK_M1, MASK_M2, mask_args, mask_geometry
from ..ref.ops import copy, copy_new, fill_zero  # noqa: F401  (host arrays: the same helpers)


def zeros(shape, dtype):
    return np.zeros(shape, dtype)


def to_device(a):
    return np.ascontiguousarray(a)


def to_host(a):
    return np.asarray(a)


@jit
def _onehot_table(W_ih, b_ih, out):
    """out (I, GH): row i is W_ih[:, i] + b_ih (each gather then reads one contiguous row)."""
    GH, I = W_ih.shape
    for i in range(I):
        o = out[i]
        for j in range(GH):
            o[j] = W_ih[j, i] + b_ih[j]


@jit
def _project_onehot(W_ih, b_ih, x, out):
    GH, I = W_ih.shape
    T, B = x.shape
    table = np.empty((I, GH), W_ih.dtype)
    _onehot_table(W_ih, b_ih, table)
    for t in range(T):
        for b in range(B):
            w = table[x[t, b]]
            o = out[t, b]
            for j in range(GH):
                o[j] = w[j]


class OneHot(NamedTuple):
    """A one-hot layer's input projection, not materialised: step t, row b is table[x[t, b]]."""
    table: np.ndarray     # (V, G*H): W_ih[:, v] + b_ih
    x: np.ndarray         # (T, B) int64

    @property
    def shape(self):
        return self.x.shape + (self.table.shape[1],)


class DenseInput(NamedTuple):
    """A dense layer's input for a time loop that multiplies it itself, step by step (the LSTM's:
    x_t @ W_ih.T added into the step's recurrent product), instead of reading a projection
    (T, B, G*H) written before the loop. bias: b_ih as one row (1, G*H)."""
    x: np.ndarray         # (T, B, I), C-contiguous
    W_ih: np.ndarray      # (G*H, I)
    bias: np.ndarray      # (1, G*H)

    @property
    def shape(self):
        return self.x.shape[:2] + (self.W_ih.shape[0],)


def input_rows(xg):
    """(rows (R, G*H), index (T, B) int64) with step t, row b of the input projection at
    rows[index[t, b]]: the table and characters of a OneHot, b_ih (every step and row) of a
    DenseInput, or xg (T, B, G*H) itself."""
    if isinstance(xg, OneHot):
        return xg.table, xg.x
    if isinstance(xg, DenseInput):
        return xg.bias, np.zeros(xg.x.shape[:2], np.int64)
    T, B, GH = xg.shape     # (a writeable index: a read-only one is another type, a second compile)
    return xg.reshape(T * B, GH), np.arange(T * B, dtype=np.int64).reshape(T, B)


@jit
def _project_onehot_backward(dout, x, dW_ih, db_ih):
    """Every row of dout is added into the table row of its character; db_ih is then the sum of the
    table's rows (each row of dout is in exactly one of them): one update per row of dout instead
    of two (LSTM H=128, B=32, T=64, one thread: 206 -> 167 us)."""
    T, B, GH = dout.shape
    I = dW_ih.shape[1]
    dWT = np.zeros((I, GH), dout.dtype)
    for t in range(T):
        for b in range(B):
            w = dWT[x[t, b]]
            d = dout[t, b]
            for j in range(GH):
                w[j] += d[j]
    for i in range(I):
        w = dWT[i]
        for j in range(GH):
            db_ih[j] += w[j]
    for j in range(GH):
        for i in range(I):
            dW_ih[j, i] += dWT[i, j]


@jit
def _linear(x, W, b, out, n0, n1):
    """Rows n0:n1 of out = x @ W.T + b."""
    I = x.shape[1]
    O = out.shape[1]
    isz = x.itemsize
    rgemm(consts(x), N_, T_, n1 - n0, O, I, x.ctypes.data + n0 * I * isz, I, W.ctypes.data, I, False,
          out.ctypes.data + n0 * O * isz, O)
    for n in range(n0, n1):
        o = out[n]
        for k in range(O):
            o[k] += b[k]


@jit
def _linear_dx(dout, W, dx, n0, n1):
    """Rows n0:n1 of dx = dout @ W."""
    O, I = W.shape
    isz = dout.itemsize
    rgemm(consts(dout), N_, N_, n1 - n0, I, O, dout.ctypes.data + n0 * O * isz, O, W.ctypes.data, I, False,
          dx.ctypes.data + n0 * I * isz, I)


@jit
def _lookup(E, x, out):
    T, B = x.shape
    D = E.shape[1]
    for t in range(T):
        for b in range(B):
            e = E[x[t, b]]
            o = out[t, b]
            for k in range(D):
                o[k] = e[k]


@jit
def _lookup_backward(dout, x, dE):
    T, B = x.shape
    D = dE.shape[1]
    for t in range(T):
        for b in range(B):
            e = dE[x[t, b]]
            d = dout[t, b]
            for k in range(D):
                e[k] += d[k]


@jit
def _dropout_mask(key, thr, scale, out, n0, n1, n, row, off):
    """Elements n0:n1 of a dropout mask (the hash of ref.ops.dropout_mask); element i is element
    (i // n) * row + off + i % n of the whole mask (ref.ops.mask_geometry)."""
    g, m1, m2 = np.uint64(MASK_GAMMA), np.uint64(MASK_M1), np.uint64(MASK_M2)
    top = np.uint64(64 - MASK_BITS)
    t, j = n0 // n, n0 % n
    for i in range(n0, n1):
        z = key + np.uint64(t * row + off + j + 1) * g
        z = (z ^ (z >> np.uint64(30))) * m1
        z = (z ^ (z >> np.uint64(27))) * m2
        z = z ^ (z >> np.uint64(31))
        out[i] = scale if (z >> top) < thr else 0.0
        j += 1
        if j == n:
            j = 0
            t += 1


@jit
def _mul(a, b, out):
    for i in range(out.shape[0]):
        out[i] = a[i] * b[i]


def project_onehot(W_ih, b_ih, x, out):
    """out[t, b] = W_ih[:, x[t, b]] + b_ih."""
    _project_onehot(W_ih, b_ih, x, out)


def onehot_input(W_ih, b_ih, x, out):
    """The input projection of a one-hot layer as the recurrent forward takes it: here a OneHot
    (out is not written; see the module docstring)."""
    table = np.empty((W_ih.shape[1], W_ih.shape[0]), W_ih.dtype)
    _onehot_table(W_ih, b_ih, table)
    return OneHot(table, x)


def project_onehot_backward(dout, x, dW_ih, db_ih):
    _project_onehot_backward(dout, x, dW_ih, db_ih)


def linear(x, W, b, out):
    """out = x @ W.T + b for x (N, I), W (O, I)."""
    _threads.run(_linear, [(x, W, b, out, n0, n1) for n0, n1 in _threads.chunks(x.shape[0])])


def linear_backward(dout, x, W, dx, dW, db):
    """Accumulate dW, db; write dx = dout @ W unless dx is None."""
    wgrad(dout, x, dW, db, consts(dout))
    if dx is not None:
        _threads.run(_linear_dx, [(dout, W, dx, n0, n1) for n0, n1 in _threads.chunks(dout.shape[0])])


def lookup(E, x, out):
    _lookup(E, x, out)


def lookup_backward(dout, x, dE):
    _lookup_backward(dout, x, dE)


def dropout_mask(key, keep, out, rows=None):
    """out = the dropout mask of ref.ops.dropout_mask (the same elements), on the worker threads."""
    k, thr, scale = mask_args(key, keep, out.dtype)
    n, row, off = mask_geometry(out.shape, rows)
    flat = out.reshape(-1)
    _threads.run(_dropout_mask, [(k, thr, scale, flat, n0, n1, n, row, off)
                                 for n0, n1 in _threads.chunks(flat.size, 1 << 16)])


def mul(a, b, out):
    """out = a * b elementwise (out may be a or b); out must be C-contiguous."""
    if not out.flags.c_contiguous:
        raise ValueError("mul: out must be C-contiguous")
    _mul(np.ravel(a), np.ravel(b), out.reshape(-1))

