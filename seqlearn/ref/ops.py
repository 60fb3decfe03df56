"""Non-recurrent pieces in numpy: input projections, embedding lookup, dropout, array helpers."""
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


def copy(src, dst):
    dst[...] = src


def copy_new(a):
    return a.copy()


def fill_zero(a):
    a[...] = 0
