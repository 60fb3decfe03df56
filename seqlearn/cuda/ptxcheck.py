"""Compile every cuda kernel to PTX without a GPU (numba-cuda's compile_ptx; needs the NVVM wheels
of `numba-cuda[cu12]`), because the simulator accepts code that the real compiler rejects.

    NUMBA_ENABLE_CUDASIM=0 python -m seqlearn.cuda.ptxcheck [--cc 9.0] [--filter persist]

Prints one JSON line per (kernel, signature): ok, seconds, the bytes of local memory the PTX
declares (a local array that did not become registers shows up here), and the error if any.
With --ptxas (the ptxas of the nvidia-cuda-nvcc wheel, or one on PATH), also the registers,
spill bytes and stack frame that ptxas reports for sm_XY (`ptxas -c -v`: the counts a device
shows; they decide how many threads a persistent block can have).
Exit status 0 when everything compiled, 1 when something failed, 3 when PTX compilation is not
possible at all here (no NVVM).
"""
import argparse
import json
import re
import sys
import time

from . import _gemm, config, gru, head, lstm, ops, optim, persist, rnn, sample
from ._jit import get


class _FakeDevice:
    def __init__(self, cc):
        self.compute_capability = cc


def _patch_current_device(cc):
    """Kernels that call device functions or use cuda.cg ask the current device for its compute
    capability while compiling; without a GPU, answer with the target's."""
    import numba.cuda.dispatcher as disp
    disp.get_current_device = lambda: _FakeDevice(cc)


def local_bytes(ptx):
    return sum(int(n) for n in re.findall(r"\.local\s+\.align\s+\d+\s+\.b8\s+\w+\[(\d+)\]", ptx))


def _ptxas():
    import os
    import shutil
    try:
        import nvidia.cuda_nvcc as nv
        for base in list(getattr(nv, "__path__", [])):
            p = os.path.join(base, "bin", "ptxas")
            if os.path.exists(p):
                return p
    except Exception:  # noqa: BLE001
        pass
    return shutil.which("ptxas")


def ptxas_report(ptx, cc):
    """{"regs", "spill_stores", "stack"} from `ptxas -c -v` (relocatable: the grid barrier's
    device-runtime symbols stay unresolved), or {"ptxas_error"}."""
    import subprocess
    import tempfile
    exe = _ptxas()
    if not exe:
        return {"ptxas_error": "no ptxas found"}
    with tempfile.NamedTemporaryFile("w", suffix=".ptx", delete=False) as f:
        f.write(ptx)
    try:
        r = subprocess.run([exe, f"-arch=sm_{cc[0]}{cc[1]}", "-c", "-v", "-o", "/dev/null", f.name],
                           capture_output=True, text=True, timeout=120)
    finally:
        import os
        os.unlink(f.name)
    out = {}
    m = re.search(r"Used (\d+) registers", r.stderr)
    if m:
        out["regs"] = int(m.group(1))
    m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores", r.stderr)
    if m:
        out["stack"], out["spill_stores"] = int(m.group(1)), int(m.group(2))
    if not out:
        out["ptxas_error"] = r.stderr[-500:]
    return out


# ---- the kernels and signatures to compile --------------------------------------------------
def _sigs(template):
    return [template.format(f=f) for f in ("float32", "float64")]


def registry():
    """[(name, python function to compile, [signatures])] covering every kernel, at the launch
    sizes of seqlearn.cuda.config."""
    out = []
    for dt in ("float32", "float64"):
        f = dt
        out.append((f"matmul[{dt}]", get(_gemm.build_matmul, config.TILE, dt),
                    [f"void({f}[:, :], {f}[:, :], {f}[:, :], {f}[::1], int64, int64, int64, int64)"]))
        out.append((f"matmul_rt_big[{dt}]", get(_gemm.build_matmul_rt, config.MM_BIG_TILE, config.MM_BIG_BK,
                                                  config.MM_BIG_TT, dt),
                    [f"void({f}[:, :], {f}[:, :], {f}[:, :], {f}[::1], int64, int64, int64, int64)"]))
        out.append((f"matmul_rt[{dt}]", get(_gemm.build_matmul_rt, config.MM_TILE, config.MM_BK, config.MM_TT, dt),
                    [f"void({f}[:, :], {f}[:, :], {f}[:, :], {f}[::1], int64, int64, int64, int64)",
                     f"void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[::1], int64, int64, int64, int64)"]))
        wsig = (f"void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, :, ::1], {f}[::1], {f}[:, ::1], "
                "int64, int64, int64, int64)")
        # float64 only at the small tile (the big one is the same source: ~20 s more to compile)
        for (bt, tt, bk) in (config.MM_WG_TILES if dt == "float32" else config.MM_WG_TILES[-1:]):
            out.append((f"matmul_wg{bt}[{dt}]", get(_gemm.build_matmul_wg, bt, bk, tt, dt, 0), [wsig]))
        out.append((f"splitk_reduce[{dt}]", get(_gemm.build_splitk_reduce, dt),
                    [f"void({f}[:, ::1], {f}[::1], {f}[:, ::1], {f}[::1], int64, int64)"]))
        if dt == "float32":   # with launch bounds (config.MM_WG_MINBLOCKS): the compile path differs
            bt, tt, bk = config.MM_WG_TILES[0]
            out.append((f"matmul_wg{bt}_lb3[{dt}]", get(_gemm.build_matmul_wg, bt, bk, tt, dt, 3), [wsig]))
        out.append((f"reduce_sum[{dt}]", get(ops.build_reduce, config.REDUCE_THREADS, dt),
                    [f"void({f}[::1], {f}[::1], int64)"]))
        out.append((f"xent[{dt}]", get(head.build_xent, config.XENT_THREADS, dt),
                    [f"void({f}[:, ::1], int64[::1], {f}[::1], float64, int64)"]))
        out.append((f"colsum32[{dt}]", get(ops.build_colsum, config.COLSUM_ROWS, dt),
                    [f"void({f}[:, :], {f}[::1], int64)", f"void({f}[:, ::1], {f}[::1], int64)"]))
        out.append((f"onehot_scatter[{dt}]", get(ops.build_onehot_scatter, config.COLSUM_ROWS, dt),
                    [f"void({f}[:, ::1], int64[::1], {f}[:, ::1])"]))
    plain = [
        ("fill", ops.k_fill, "void({f}[::1], float64)"),
        ("copy", ops.k_copy, "void({f}[::1], {f}[::1])"),
        ("mul", ops.k_mul, "void({f}[::1], {f}[::1], {f}[::1])"),
        ("dropout_mask", ops.k_dropout_mask, "void(uint64, uint64, float64, {f}[::1], int64, int64, int64)"),
        ("clip", ops.k_clip, "void({f}[::1], float64, float64)"),
        ("colsum", ops.k_colsum, "void({f}[:, :], {f}[::1], int64)"),
        ("project_onehot", ops.k_project_onehot, "void({f}[:, ::1], {f}[::1], int64[::1], {f}[:, ::1])"),
        ("project_onehot_backward", ops.k_project_onehot_backward, "void({f}[:, ::1], int64[::1], {f}[:, ::1])"),
        ("lookup", ops.k_lookup, "void({f}[:, ::1], int64[::1], {f}[:, ::1])"),
        ("lookup_backward", ops.k_lookup_backward, "void({f}[:, ::1], int64[::1], {f}[:, ::1])"),
        ("lstm_fwd_step", lstm.k_lstm_fwd_step,
         "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], int64, {f}[:, ::1], {f}[:, ::1], {f}[:, ::1])"),
        ("lstm_bwd_step", lstm.k_lstm_bwd_step,
         "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], int64, {f}[:, ::1])"),
        ("peephole_grad", lstm.k_peephole_grad, "void({f}[:, :, ::1], {f}[:, :, ::1], {f}[:, ::1])"),
        ("gru_fwd_step", gru.k_gru_fwd_step,
         "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], int64, {f}[:, ::1], {f}[:, ::1], {f}[:, ::1])"),
        ("gru_cho_fwd_n", gru.k_gru_cho_fwd_n, "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1])"),
        ("gru_bwd_step", gru.k_gru_bwd_step,
         "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], int64, {f}[:, ::1], {f}[:, ::1])"),
        ("gru_cho_bwd_r", gru.k_gru_cho_bwd_r,
         "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1])"),
        ("rnn_fwd_step", rnn.k_rnn_fwd_step, "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1])"),
        ("rnn_bwd_step", rnn.k_rnn_bwd_step, "void({f}[:, ::1], {f}[:, ::1], {f}[:, ::1], {f}[:, ::1])"),
        ("sgd", optim.k_sgd, "void({f}[::1], {f}[::1], {f}[::1], float64, float64, float64, int64, float64, int64)"),
        ("adagrad", optim.k_adagrad, "void({f}[::1], {f}[::1], {f}[::1], float64, float64, float64)"),
        ("rmsprop", optim.k_rmsprop, "void({f}[::1], {f}[::1], {f}[::1], float64, float64, float64, float64)"),
        ("adam", optim.k_adam, "void({f}[::1], {f}[::1], {f}[::1], {f}[::1], float64, float64, float64, float64, "
                         "float64, int64, float64, float64)"),
        ("scale", optim.k_scale, "void({f}[::1], float64)"),
    ]
    for name, fn, tmpl in plain:
        out.append((name, fn, _sigs(tmpl)))
    return out + persist.registry() + sample.registry()


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--cc", default="9.0")
    ap.add_argument("--filter", default="")
    ap.add_argument("--ptxas", action="store_true", help="also report ptxas registers / spills")
    a = ap.parse_args(argv)
    cc = tuple(int(x) for x in a.cc.split("."))
    from numba import config as nbconfig
    if nbconfig.ENABLE_CUDASIM:
        print(json.dumps({"error": "NUMBA_ENABLE_CUDASIM is set: the simulator cannot compile PTX"}))
        return 3
    from numba import cuda
    _patch_current_device(cc)

    def probe(x):
        x[0] = 1.0
    try:
        cuda.compile_ptx(probe, "void(float32[::1])", cc=cc)
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"error": f"PTX compilation unavailable: {type(e).__name__}: {e}"}))
        return 3
    entries = registry()
    failed = 0
    for name, fn, sigs in entries:
        if a.filter and a.filter not in name:
            continue
        for sig in sigs:
            t0 = time.perf_counter()
            rec = {"kernel": name, "sig": sig}
            try:
                lb = getattr(fn, "seqlearn_launch_bounds", None)   # kernels built with launch bounds
                kw = {"launch_bounds": lb} if lb else {}
                ptx, _ = cuda.compile_ptx(getattr(fn, "py_func", fn), sig, cc=cc, **kw)
                rec.update(ok=True, local_bytes=local_bytes(ptx), grid_sync="cudaCGSynchronize" in ptx
                           or "cg" in name and "cudaCG" in ptx, ptx_lines=ptx.count("\n"),
                           f64_ops=len(re.findall(r"\.f64\b", ptx)))
                if a.ptxas:
                    rec.update(ptxas_report(ptx, cc))
            except Exception as e:  # noqa: BLE001
                failed += 1
                rec.update(ok=False, error=f"{type(e).__name__}: {str(e)[:2000]}")
            rec["seconds"] = round(time.perf_counter() - t0, 2)
            print(json.dumps(rec), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
