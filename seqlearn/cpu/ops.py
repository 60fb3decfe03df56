"""Non-recurrent pieces, jitted where they compute: input projections (a one-hot input's
projection is a row gather), embedding lookup, dropout mask product. Products go through njit
``np.dot`` like the rest of the backend (one BLAS library, one thread pool)."""
import numpy as np

from ._blas import acc_colsum, acc_tn
from ._jit import jit


def zeros(shape, dtype):
    return np.zeros(shape, dtype)


def to_device(a):
    return np.ascontiguousarray(a)


def to_host(a):
    return np.asarray(a)


@jit
def _project_onehot(W_ih, b_ih, x, out):
    GH, I = W_ih.shape
    T, B = x.shape
    WT = np.empty((I, GH), W_ih.dtype)      # transposed once, so each gather is a contiguous row
    for j in range(GH):
        for i in range(I):
            WT[i, j] = W_ih[j, i]
    for t in range(T):
        for b in range(B):
            w = WT[x[t, b]]
            o = out[t, b]
            for j in range(GH):
                o[j] = w[j] + b_ih[j]


@jit
def _project_onehot_backward(dout, x, dW_ih, db_ih):
    T, B, GH = dout.shape
    I = dW_ih.shape[1]
    dWT = np.zeros((I, GH), dout.dtype)
    for t in range(T):
        for b in range(B):
            w = dWT[x[t, b]]
            d = dout[t, b]
            for j in range(GH):
                w[j] += d[j]
                db_ih[j] += d[j]
    for j in range(GH):
        for i in range(I):
            dW_ih[j, i] += dWT[i, j]


@jit
def _linear(x, W, b, out):
    np.dot(x, W.T, out)
    N, O = out.shape
    for n in range(N):
        o = out[n]
        for k in range(O):
            o[k] += b[k]


@jit
def _linear_backward(dout, x, W, dx, want_dx, dW, db):
    acc_tn(dW, dout, x)
    acc_colsum(db, dout)
    if want_dx:
        np.dot(dout, W, dx)


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
def _mul(a, b, out):
    for i in range(out.shape[0]):
        out[i] = a[i] * b[i]


def project_onehot(W_ih, b_ih, x, out):
    """out[t, b] = W_ih[:, x[t, b]] + b_ih."""
    _project_onehot(W_ih, b_ih, x, out)


def project_onehot_backward(dout, x, dW_ih, db_ih):
    _project_onehot_backward(dout, x, dW_ih, db_ih)


def linear(x, W, b, out):
    """out = x @ W.T + b for x (N, I), W (O, I)."""
    _linear(x, W, b, out)


def linear_backward(dout, x, W, dx, dW, db):
    """Accumulate dW, db; write dx = dout @ W unless dx is None."""
    want = dx is not None
    _linear_backward(dout, x, W, dx if want else np.zeros((1, 1), dout.dtype), want, dW, db)


def lookup(E, x, out):
    _lookup(E, x, out)


def lookup_backward(dout, x, dE):
    _lookup_backward(dout, x, dE)


def mul(a, b, out):
    """out = a * b elementwise (out may be a or b); out must be C-contiguous."""
    if not out.flags.c_contiguous:
        raise ValueError("mul: out must be C-contiguous")
    _mul(np.ravel(a), np.ravel(b), out.reshape(-1))


def clip_all(x, lo, hi):
    np.clip(x, lo, hi, out=x)


def copy(src, dst):
    dst[...] = src


def copy_new(a):
    return a.copy()


def fill_zero(a):
    a[...] = 0
