"""One calling convention for every cell on every backend.

A backend package holds modules lstm, gru and rnn with cell-specific signatures; Cell adapts them to

    ws = cell.workspace(T, B, dtype)
    cell.forward(ws, xg, W_hh, b_hh, p, h0, c0)            # ws["hs"][t + 1] is h_t; final state inside
    dxg = cell.backward(ws, xg, W_hh, b_hh, p, dhs, dhT, dcT,   # writes dxg (or returns a
                        dxg, dW_hh, db_hh, dp, dh0, dc0)    # workspace buffer holding it), dh0,
                                                            # dc0; accumulates dW_hh, db_hh, dp

xg (T, B, G*H) is the input projection W_ih x + b_ih (or what the backend's fused_input returned
for a dense input); p is the (3, H) peephole block or None; c0, dcT, dc0 are ignored (None) for gru
and rnn.
"""
from .params import GATES


class Cell:
    def __init__(self, backend, kind, H, peephole=False, gru_variant="torch"):
        self.kind, self.H, self.peephole, self.variant = kind, H, peephole, gru_variant
        self.G = GATES[kind]
        self.mod = getattr(backend, kind)
        self.has_c = kind == "lstm"

    def workspace(self, T, B, dtype):
        return self.mod.workspace(T, B, self.H, dtype)

    def final(self, ws):
        """(h_T, c_T or None) as views into the workspace."""
        T = ws["hs"].shape[0] - 1
        return ws["hs"][T], (ws["cs"][T] if self.has_c else None)

    def fused_input(self, x, W_ih, b_ih):
        """What forward takes as xg for a dense input x (T, B, I) when the backend's time loop
        multiplies x_t @ W_ih.T itself (the cpu lstm), else None (the caller writes xg)."""
        fuse = getattr(self.mod, "fused_input", None)
        return None if fuse is None else fuse(x, W_ih, b_ih)

    def forward(self, ws, xg, W_hh, b_hh, p, h0, c0):
        if self.kind == "lstm":
            self.mod.forward(ws, xg, W_hh, b_hh, p, h0, c0)
        elif self.kind == "gru":
            self.mod.forward(ws, xg, W_hh, b_hh, self.variant, h0)
        else:
            self.mod.forward(ws, xg, W_hh, b_hh, h0)

    def backward(self, ws, xg, W_hh, b_hh, p, dhs, dhT, dcT, dxg, dW_hh, db_hh, dp, dh0, dc0):
        """Returns the array that holds the gradient w.r.t. xg: dxg, or a workspace buffer the
        backend overwrote in place instead (the cpu lstm and gru "torch": ws["gates"])."""
        if self.kind == "lstm":
            r = self.mod.backward(ws, xg, W_hh, b_hh, p, dhs, dhT, dcT, dxg, dW_hh, db_hh, dp, dh0, dc0)
        elif self.kind == "gru":
            r = self.mod.backward(ws, xg, W_hh, b_hh, self.variant, dhs, dhT, dxg, dW_hh, db_hh, dh0)
        else:
            r = self.mod.backward(ws, xg, W_hh, b_hh, dhs, dhT, dxg, dW_hh, db_hh, dh0)
        return dxg if r is None else r
