"""Linear decoder and mean softmax cross-entropy on the GPU: one product for all T*B rows, a
one-block-per-row softmax kernel, and a device-side sum so that one scalar comes back."""
import math

import numpy as np
from numba import cuda

from . import config, ops
from ._jit import get, nbtype
from ._launch import launch


def build_xent(nt, dt):
    nbt = nbtype(dt)

    @cuda.jit
    def xent(Z, y, rowloss, scale, write_grad):
        """rowloss[n] = logsumexp(Z[n]) - Z[n, y[n]]; if write_grad, Z[n] becomes
        (softmax(Z[n]) - onehot(y[n])) * scale."""
        red = cuda.shared.array(nt, nbt)
        n = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        V = Z.shape[1]
        m = nbt(-math.inf)
        for v in range(tid, V, nt):
            m = max(m, Z[n, v])
        red[tid] = m
        cuda.syncthreads()
        w = nt // 2
        while w > 0:
            if tid < w:
                red[tid] = max(red[tid], red[tid + w])
            cuda.syncthreads()
            w //= 2
        m = red[0]
        cuda.syncthreads()
        s = nbt(0.0)
        for v in range(tid, V, nt):
            s += math.exp(Z[n, v] - m)
        red[tid] = s
        cuda.syncthreads()
        w = nt // 2
        while w > 0:
            if tid < w:
                red[tid] += red[tid + w]
            cuda.syncthreads()
            w //= 2
        tot = red[0]
        yn = y[n]
        if tid == 0:
            rowloss[n] = math.log(tot) - (Z[n, yn] - m)
        cuda.syncthreads()
        if write_grad:
            inv = 1.0 / tot
            for v in range(tid, V, nt):
                p = math.exp(Z[n, v] - m) * inv
                if v == yn:
                    p -= 1.0
                Z[n, v] = p * scale

    return xent


_SCRATCH = {}


def _buffers(N, V, dtype):
    key = (N, V, np.dtype(dtype).str)
    buf = _SCRATCH.get(key)
    if buf is None:
        if len(_SCRATCH) >= config.HEAD_SCRATCH_SHAPES:
            _SCRATCH.clear()
        buf = _SCRATCH[key] = (cuda.device_array((N, V), dtype), cuda.device_array(N, dtype),
                               cuda.device_array(1, dtype))
    return buf


def _loss(h, W, b, y, write_grad):
    N, V = h.shape[0], W.shape[0]
    Z, rows, out = _buffers(N, V, h.dtype)
    ops.matmul(h, W, Z, bias=b, tb=True)
    nt = config.XENT_THREADS
    launch(get(build_xent, nt, h.dtype.name), (N, nt), (Z, y, rows, 1.0 / N, int(write_grad)))
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
