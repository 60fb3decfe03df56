"""CharLM: input (one-hot or embedding) -> L recurrent layers -> linear head -> mean cross-entropy.

Everything here is backend-agnostic glue; the arithmetic lives in the backend packages
(seqlearn.ref, seqlearn.cpu, seqlearn.cuda). Arrays inside the model are time-major (T, B, ...).
"""
import numpy as np

from . import backends, checkpoint_file, params as P
from .cells import Cell
from .scoring import log_softmax

CELLS = ("lstm", "gru", "rnn")
VARIANTS = ("torch", "cho")
DTYPES = ("float32", "float64")


def _check(cond, msg):
    if not cond:
        raise ValueError(msg)


class CharLM:
    def __init__(self, vocab, cell="lstm", hidden_size=128, num_layers=2, embed_dim=0,
                 peephole=False, gru_variant="torch", dropout=0.0, dtype="float32",
                 device="cpu", seed=0, dropout_top=0.0):
        vocab = "".join(vocab)
        _check(len(vocab) >= 1 and len(set(vocab)) == len(vocab), "vocab must be distinct characters")
        _check(cell in CELLS, f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
        _check(gru_variant in VARIANTS, f"unknown gru_variant {gru_variant!r}; choose torch or cho")
        _check(not peephole or cell == "lstm", "peephole connections exist only for the lstm cell")
        _check(int(hidden_size) >= 1, "hidden_size must be a positive integer")
        _check(int(num_layers) >= 1, "num_layers must be a positive integer")
        _check(int(embed_dim) >= 0, "embed_dim must be 0 (one-hot) or positive")
        _check(0.0 <= float(dropout) < 1.0, "dropout must be in [0, 1)")
        _check(0.0 <= float(dropout_top) < 1.0, "dropout_top must be in [0, 1)")
        _check(str(dtype) in DTYPES, f"dtype must be one of {', '.join(DTYPES)}")
        self.vocab, self.cell = vocab, cell
        self.V, self.H, self.L, self.E = len(vocab), int(hidden_size), int(num_layers), int(embed_dim)
        self.peephole, self.gru_variant, self.dropout = bool(peephole), gru_variant, float(dropout)
        # dropout: on the outputs of layers 0..L-2 (PyTorch's nn.LSTM dropout); dropout_top: on the
        # top layer's output before the head (char-rnn's, Zaremba et al. 2014)
        self.dropout_top = float(dropout_top)
        self.dtype, self.device, self.seed = np.dtype(dtype), device, int(seed)
        self.backend = backends.get(device)
        self.rng = np.random.default_rng(self.seed)
        self.spec = P.layout(cell, self.V, self.H, self.L, self.E, self.peephole)
        host, self.table = P.init(self.spec, self.H, self.rng, self.dtype)
        self.flat = self.backend.ops.to_device(host)
        self.grad_flat = self.backend.ops.zeros(self.flat.shape, self.dtype)
        self._p = P.views(self.flat, self.table)
        self._g = P.views(self.grad_flat, self.table)
        self.cell_impl = Cell(self.backend, cell, self.H, self.peephole, gru_variant)
        self._ws = {}
        self._dstate, self._dstate_src = None, None
        # (b0, B): the batches are streams b0.. of B (one rank's share); dropout masks are then
        # that slice of the whole batch's (seqlearn/dist.py). None: the batches are all there is.
        self.stream_rows = None

    @property
    def dstate(self):
        """The gradient of the last forward_backward's loss w.r.t. its initial state, as host
        arrays ((dh0, dc0) for lstm, else dh0); copied from the backend when first read, so a
        training step on a GPU does not wait for it."""
        if self._dstate is None and self._dstate_src is not None:
            to_host = self.backend.ops.to_host
            self._dstate = self._pack_state(*(to_host(a).copy() for a in self._dstate_src), True)
        return self._dstate

    # ---- parameters -------------------------------------------------------------------------
    @property
    def num_params(self):
        return int(self.flat.shape[0])

    @property
    def params(self):
        """name -> array (live views on the CPU backends, host copies on cuda)."""
        if self.backend.on_host:
            return self._p
        return P.views(self.backend.ops.to_host(self.flat), self.table)

    @property
    def grads(self):
        if self.backend.on_host:
            return self._g
        return P.views(self.backend.ops.to_host(self.grad_flat), self.table)

    def load_state_dict(self, sd):
        """Copy weights in from a name -> array mapping with exactly this model's names and shapes."""
        host = self.backend.ops.to_host(self.flat).copy()
        hv = P.views(host, self.table)
        missing = sorted(set(self.table) - set(sd))
        extra = sorted(set(sd) - set(self.table))
        if missing or extra:
            raise ValueError(f"parameter names do not match (missing {missing}, unexpected {extra})")
        for k, v in sd.items():
            v = np.asarray(v)
            if v.shape != hv[k].shape:
                raise ValueError(f"{k}: shape {v.shape}, expected {hv[k].shape}")
            hv[k][...] = v
        self.set_flat(host)

    def set_flat(self, host):
        new = self.backend.ops.to_device(np.ascontiguousarray(host, self.dtype))
        if self.backend.on_host:
            self.flat[...] = new
        else:
            self.flat.copy_to_device(new)

    def state_dict(self):
        return {k: np.array(v) for k, v in self.params.items()}

    def config(self):
        return {"cell": self.cell, "hidden_size": self.H, "num_layers": self.L, "embed_dim": self.E,
                "gru_variant": self.gru_variant, "peephole": self.peephole, "dropout": self.dropout,
                "dropout_top": self.dropout_top, "vocab": self.vocab}

    def save(self, path, extra_meta=None, arrays=None):
        checkpoint_file.save(path, self, extra_meta=extra_meta, arrays=arrays)

    # ---- state --------------------------------------------------------------------------------
    def zero_state(self, B):
        z = np.zeros((self.L, B, self.H), self.dtype)
        return (z, z.copy()) if self.cell == "lstm" else z

    def _split_state(self, state, B):
        ops = self.backend.ops
        if state is None:
            h0 = ops.zeros((self.L, B, self.H), self.dtype)
            c0 = ops.zeros((self.L, B, self.H), self.dtype) if self.cell == "lstm" else None
            return h0, c0
        if self.cell == "lstm":
            _check(isinstance(state, (tuple, list)) and len(state) == 2, "lstm state must be a tuple (h, c)")
            h0, c0 = state
        else:
            h0, c0 = state, None
        h0 = self._state_array(h0, B)
        c0 = None if c0 is None else self._state_array(c0, B)
        return h0, c0

    def _state_array(self, a, B):
        _check(tuple(a.shape) == (self.L, B, self.H), f"state must have shape {(self.L, B, self.H)}, got {tuple(a.shape)}")
        if isinstance(a, np.ndarray):
            return self.backend.ops.to_device(np.ascontiguousarray(a, self.dtype))
        return a

    def _pack_state(self, hT, cT, host):
        conv = self.backend.ops.to_host if host else (lambda a: a)
        if self.cell == "lstm":
            return conv(hT), conv(cT)
        return conv(hT)

    # ---- workspaces -------------------------------------------------------------------------------
    def _workspace(self, T, B):
        key = (T, B)
        ws = self._ws.get(key)
        if ws is None:
            if len(self._ws) >= 4:
                self._ws.clear()
            z = lambda *s: self.backend.ops.zeros(s, self.dtype)  # noqa: E731
            G, H, L = self.cell_impl.G, self.H, self.L
            ws = {"layers": [self.cell_impl.workspace(T, B, self.dtype) for _ in range(L)],
                  "dxg": z(T, B, G * H),
                  "dtop": z(T * B, H), "dh": z(T, B, H),
                  "hT": z(L, B, H), "cT": z(L, B, H), "dh0": z(L, B, H), "dc0": z(L, B, H),
                  "xgs": [z(T, B, G * H) for _ in range(L)],
                  "drop": [z(T, B, H) for _ in range(L - 1)] if self.dropout > 0 else [],
                  "mask": [z(T, B, H) for _ in range(L - 1)] if self.dropout > 0 else []}
            if self.dropout_top > 0:
                ws["drop_top"], ws["mask_top"] = z(T, B, H), z(T, B, H)
            if self.E:
                ws["emb"] = z(T, B, self.E)
                ws["demb"] = z(T, B, self.E)
            self._ws[key] = ws
        return ws

    def _tokens(self, a, name):
        a = np.asarray(a)
        _check(a.ndim == 2, f"{name} must be an integer array of shape (B, T)")
        _check(np.issubdtype(a.dtype, np.integer), f"{name} must hold integers")
        _check(a.size == 0 or (a.min() >= 0 and a.max() < self.V), f"{name} holds indices outside [0, {self.V})")
        return self.backend.ops.to_device(np.ascontiguousarray(a.T, np.int64))

    # ---- forward / backward -------------------------------------------------------------------
    def _forward(self, x, h0, c0, ws, train):
        """Run the stack; return the top layer's outputs (T*B, H) and each layer's (input, input
        projection as the cell's forward took it)."""
        ops, p, cell = self.backend.ops, self._p, self.cell_impl
        T, B = x.shape
        inputs = []
        inp = None
        if self.E:
            ops.lookup(p["encoder.weight"], x, ws["emb"])
            inp = ws["emb"]
        for k in range(self.L):
            xg = ws["xgs"][k]
            W_ih, b_ih = p[f"rnn.weight_ih_l{k}"], p[f"rnn.bias_ih_l{k}"]
            if inp is None:
                xg = ops.onehot_input(W_ih, b_ih, x, xg)
            elif (fused := cell.fused_input(inp, W_ih, b_ih)) is not None:
                xg = fused                          # the time loop multiplies x_t @ W_ih.T itself
            else:
                ops.linear(inp.reshape(T * B, inp.shape[2]), W_ih, b_ih, xg.reshape(T * B, xg.shape[2]))
            inputs.append((inp, xg))
            lw = ws["layers"][k]
            cell.forward(lw, xg, p[f"rnn.weight_hh_l{k}"], p[f"rnn.bias_hh_l{k}"], self._peep(p, k),
                         h0[k], None if c0 is None else c0[k])
            out = lw["hs"][1:]
            if train and self.dropout > 0 and k < self.L - 1:
                ops.mul(out, ws["mask"][k], ws["drop"][k])
                out = ws["drop"][k]
            if train and self.dropout_top > 0 and k == self.L - 1:
                ops.mul(out, ws["mask_top"], ws["drop_top"])
                out = ws["drop_top"]
            inp = out
        return inp.reshape(T * B, self.H), inputs

    def _peep(self, views, k):
        """The (3, H) block of layer k's peephole vectors (adjacent in the buffer), or None."""
        if not self.peephole:
            return None
        flat = self.flat if views is self._p else self.grad_flat
        a = self.table[f"rnn.weight_pi_l{k}"][0]
        return flat[a:a + 3 * self.H].reshape(3, self.H)

    def _final_state(self, ws, host):
        ops = self.backend.ops
        hT, cT = ws["hT"], ws["cT"]
        for k, lw in enumerate(ws["layers"]):
            h, c = self.cell_impl.final(lw)
            ops.copy(h, hT[k])
            if c is not None:
                ops.copy(c, cT[k])
        return self._pack_state(ops.copy_new(hT), ops.copy_new(cT) if self.cell == "lstm" else None, host)

    def _draw_masks(self, ws, T, B):
        """One 63-bit key per mask from the model's generator; the backend computes the mask from
        it (a counter-based hash, the same elements on every backend: ref.ops.dropout_mask)."""
        masks = [(1.0 - self.dropout, ws["mask"][k]) for k in range(self.L - 1)] if self.dropout > 0 else []
        if self.dropout_top > 0:
            masks.append((1.0 - self.dropout_top, ws["mask_top"]))
        for keep, mask in masks:
            self.backend.ops.dropout_mask(int(self.rng.integers(0, 1 << 63)), keep, mask, self.stream_rows)

    def forward_backward(self, inputs, targets, state=None, host_state=False):
        """Loss and gradients; gradients stay in self.grad_flat (backend array), the gradient w.r.t.
        the initial state in self.dstate. Returns (loss, final state). The loss comes back to the
        host last (on cuda its copy waits for the whole step: one synchronisation, at the end)."""
        x, y = self._tokens(inputs, "inputs"), self._tokens(targets, "targets")
        _check(x.shape == y.shape, "inputs and targets must have the same shape")
        T, B = x.shape
        ws = self._workspace(T, B)
        h0, c0 = self._split_state(state, B)
        ops, p, g, cell = self.backend.ops, self._p, self._g, self.cell_impl
        if self.dropout > 0 or self.dropout_top > 0:
            self._draw_masks(ws, T, B)
        top, inputs_ = self._forward(x, h0, c0, ws, train=True)
        state_out = self._final_state(ws, host_state)
        ops.fill_zero(self.grad_flat)
        loss = self.backend.head.loss_backward(top, p["decoder.weight"], p["decoder.bias"], y.reshape(T * B),
                                               ws["dtop"], g["decoder.weight"], g["decoder.bias"])
        dout = ws["dtop"].reshape(T, B, self.H)
        if self.dropout_top > 0:
            ops.mul(dout, ws["mask_top"], dout)
        for k in range(self.L - 1, -1, -1):
            if self.dropout > 0 and k < self.L - 1:
                ops.mul(dout, ws["mask"][k], dout)
            inp, xg = inputs_[k]
            dxg = cell.backward(ws["layers"][k], xg, p[f"rnn.weight_hh_l{k}"], p[f"rnn.bias_hh_l{k}"],
                                self._peep(p, k), dout, None, None, ws["dxg"], g[f"rnn.weight_hh_l{k}"],
                                g[f"rnn.bias_hh_l{k}"], self._peep(g, k), ws["dh0"][k],
                                ws["dc0"][k] if c0 is not None else None)
            W_ih, dW_ih, db_ih = p[f"rnn.weight_ih_l{k}"], g[f"rnn.weight_ih_l{k}"], g[f"rnn.bias_ih_l{k}"]
            GH = dxg.shape[2]
            if inp is None:
                ops.project_onehot_backward(dxg, x, dW_ih, db_ih)
            else:
                dinp = ws["dh"] if k > 0 else ws["demb"]
                ops.linear_backward(dxg.reshape(T * B, GH), inp.reshape(T * B, inp.shape[2]), W_ih,
                                    dinp.reshape(T * B, dinp.shape[2]), dW_ih, db_ih)
                dout = dinp
        if self.E:
            ops.lookup_backward(ws["demb"], x, g["encoder.weight"])
        self._dstate, self._dstate_src = None, (ws["dh0"], ws["dc0"])
        return float(loss), state_out

    def loss_and_grads(self, inputs, targets, state=None):
        """(mean nats per predicted character, {name: gradient}, final state as host arrays)."""
        loss, state = self.forward_backward(inputs, targets, state, host_state=True)
        return loss, self.grads, state

    def evaluate(self, inputs, targets, state=None, host_state=False):
        """Loss without gradients or dropout. Returns (loss, final state)."""
        x, y = self._tokens(inputs, "inputs"), self._tokens(targets, "targets")
        T, B = x.shape
        ws = self._workspace(T, B)
        h0, c0 = self._split_state(state, B)
        top, _ = self._forward(x, h0, c0, ws, train=False)
        p = self._p
        loss = self.backend.head.loss(top, p["decoder.weight"], p["decoder.bias"], y.reshape(T * B))
        return loss, self._final_state(ws, host_state)

    def logits(self, inputs, state=None, host_state=True):
        """Unnormalised next-character scores (B, T, V) as a host array, and the final state."""
        ws, top, T, B = self._inference(inputs, state)
        return self._host_logits(top, T, B), self._final_state(ws, host_state)

    def _inference(self, inputs, state):
        """One forward pass without dropout: (workspace, top layer's outputs, T, B)."""
        x = self._tokens(inputs, "inputs")
        T, B = x.shape
        ws = self._workspace(T, B)
        h0, c0 = self._split_state(state, B)
        top, _ = self._forward(x, h0, c0, ws, train=False)
        return ws, top, T, B

    def _host_logits(self, top, T, B):
        out = self.backend.ops.zeros((T * B, self.V), self.dtype)
        p = self._p
        self.backend.head.logits(top, p["decoder.weight"], p["decoder.bias"], out)
        return np.ascontiguousarray(self.backend.ops.to_host(out).reshape(T, B, self.V).transpose(1, 0, 2))

    def trace(self, inputs, state=None):
        """Everything one forward pass (no dropout) computes, as host arrays: a list with one dict
        per layer ("h", for lstm "c", and each activated gate by name, params.GATE_NAMES; each
        (B, T, H)), the next-character log-probabilities (B, T, V) and the final state."""
        ws, top, T, B = self._inference(inputs, state)
        host = lambda a: np.array(self.backend.ops.to_host(a).transpose(1, 0, 2), order="C")  # a copy: ws is reused  # noqa: E731
        H = self.H
        layers = []
        for lw in ws["layers"]:
            d = {"h": host(lw["hs"][1:])}
            if self.cell == "lstm":
                d["c"] = host(lw["cs"][1:])
            if P.GATE_NAMES[self.cell]:
                gates = host(lw["gates"])
                for i, name in enumerate(P.GATE_NAMES[self.cell]):
                    d[name] = np.array(gates[:, :, i * H:(i + 1) * H], order="C")
            layers.append(d)
        return layers, log_softmax(self._host_logits(top, T, B)), self._final_state(ws, True)

    def __repr__(self):
        extra = " peephole" if self.peephole else (f" {self.gru_variant}" if self.cell == "gru" else "")
        return (f"CharLM({self.cell}{extra}, V={self.V}, H={self.H}, L={self.L}, E={self.E}, "
                f"{self.num_params:,} params, {self.dtype.name}, {self.device})")
