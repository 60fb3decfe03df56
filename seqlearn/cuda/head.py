"""Linear decoder and mean softmax cross-entropy on the GPU: one product for all T*B rows, a
one-block-per-row softmax kernel, and a device-side sum so that one scalar comes back."""
import numpy as np
from numba import cuda

from . import config, ops
from . import kernels as K

_SCRATCH = {}


def _buffers(N, V, dtype):
    key = (N, V, np.dtype(dtype).str)
    buf = _SCRATCH.get(key)
    if buf is None:
        if len(_SCRATCH) >= 8:
            _SCRATCH.clear()
        buf = _SCRATCH[key] = (cuda.device_array((N, V), dtype), cuda.device_array(N, dtype),
                               cuda.device_array(1, dtype))
    return buf


def _loss(h, W, b, y, write_grad):
    N, V = h.shape[0], W.shape[0]
    Z, rows, out = _buffers(N, V, h.dtype)
    ops.matmul(h, W, Z, bias=b, tb=True)
    nt = config.XENT_THREADS
    K.launch(K.get(K.build_xent, nt, h.dtype.name), (N, nt), (Z, y, rows, 1.0 / N, int(write_grad)))
    ops.reduce_to(rows, out)
    return Z, out


def loss(h, W, b, y):
    """Mean cross-entropy (nats) of the targets y (N,) under softmax(h @ W.T + b)."""
    N = h.shape[0]
    _, out = _loss(h, W, b, y, False)
    return float(out.copy_to_host()[0]) / N


class DeviceLoss:
    """The mean loss, still on the device: float() copies it to the host (and so waits for the
    work queued before it). Read it before the next loss of the same shape is computed."""
    __slots__ = ("out", "n")

    def __init__(self, out, n):
        self.out, self.n = out, n

    def __float__(self):
        return float(self.out.copy_to_host()[0]) / self.n


def loss_backward(h, W, b, y, dh, dW, db):
    """Return the mean loss as a DeviceLoss (the model reads it after queueing the layers'
    backward, so the host does not wait mid-step); write dh, accumulate dW, db."""
    N = h.shape[0]
    dz, out = _loss(h, W, b, y, True)
    ops.matmul_wgrad(dz, h, dW, db)
    ops.matmul(dz, W, dh)
    return DeviceLoss(out, N)


def logits(h, W, b, out):
    ops.matmul(h, W, out, bias=b, tb=True)
