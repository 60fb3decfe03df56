"""Data-parallel scaling on paper: what one allreduce per step costs against the measured step.

Each rank runs B streams (the global batch is N*B: `--batch N*B`) and, after its backward, the N ranks
sum the flat float32 gradient buffer (4 bytes x parameters) with one MPI allreduce, then agree on the
loss and the stop flags with a small allgather. Model (no MPI needed; nothing is measured here):

    ring allreduce of S bytes  t = 2 (N-1)/N * S / bandwidth + 2 (N-1) * alpha
    small exchange             2 ceil(log2 N) * alpha          (mpi4py allgather: sizes, then data)
    cuda without CUDA-aware MPI  + 2 S / pcie                  (gradients to the host and back)
    no overlap (seqlearn now)  E = step / (step + t + small)
    layer-wise overlap         the backward is 2/3 of the step (model FLOP formula), shared by the parts
                               in proportion to their FLOPs; a part's gradients are final when its
                               backward through time ends (head, layer L-1, ..., layer 0: layer 0 last),
                               and are then allreduced while the layers below run; one link

    python benchmarks/scale_on_paper.py                     # markdown tables (docs/distributed.md)
    python benchmarks/scale_on_paper.py --alpha-us 2 --compute-scale 8 --csv
"""
import argparse
import math

from seqlearn.params import layout, offsets

V = 65                                     # tiny Shakespeare's vocabulary, as in benchmarks/train_speed.py
G = {"lstm": 4, "gru": 3}
CPU_PEAK = 195e9   # docs/results/2026-11-28-cpu-training.md: "peak 195 GFLOP/s (numpy, 2 threads)"
GPU_PEAK = 51.5e12  # docs/results/2026-11-27-gpu-h100.md, second device run: torch 8192^3, TF32 off
# docs/results/2026-11-28-cpu-training.md, table "Training throughput (chars/s)", column "seqlearn
# chars/s" of each row (2-core EPYC, 2 threads); ms per step = B*T / (chars/s)
CPU_MEASURED = [("lstm", 128, 1, 32, 64, 276485), ("lstm", 256, 2, 32, 100, 32992),
                ("lstm", 512, 2, 64, 100, 9346), ("lstm", 1024, 1, 32, 100, 6917),
                ("gru", 128, 1, 32, 64, 340913), ("gru", 256, 2, 32, 100, 43568),
                ("gru", 512, 2, 64, 100, 12259), ("gru", 1024, 1, 32, 100, 8981)]
# docs/results/2026-11-27-gpu-h100.md, "Second device run", column "seqlearn model ms" of rows
# lstm 512 32, lstm 1024 64, gru 512 32, gru 1024 64 (one layer, T = 100, H100 80GB HBM3)
GPU_MEASURED = [("lstm", 512, 1, 32, 100, 5.75), ("lstm", 1024, 1, 64, 100, 19.72),
                ("gru", 512, 1, 32, 100, 5.02), ("gru", 1024, 1, 64, 100, 17.31)]
# no measurement: cpu at CPU_PEAK (the H >= 512 rows reach 94-96 % of it), cuda at the FLOP rate of
# the measured lstm 1024/64 row (the largest)
LARGE = [("lstm", 2048, 2, 64, 100), ("lstm", 4096, 3, 64, 100), ("gru", 4096, 2, 64, 100)]


def params(cell, H, L):
    return offsets(layout(cell, V, H, L))[1]


def part_flops(cell, H, L, B, T):
    """Training FLOPs per step (docs/profile.md) of the parts in the order their gradients are final."""
    layer = [3 * 2 * B * G[cell] * H * ((V if k == 0 else H) + H) * T for k in range(L)]
    return [3 * 2 * B * H * V * T] + layer[::-1]


def part_bytes(cell, H, L):
    table, _ = offsets(layout(cell, V, H, L))
    size = {}
    for name, (a, b, _) in table.items():
        key = "head" if name.startswith("decoder") else int(name.rsplit("_l", 1)[1])
        size[key] = size.get(key, 0) + 4 * (b - a)
    return [size["head"]] + [size[k] for k in range(L - 1, -1, -1)]


def ring_ms(nbytes, n, gbit, alpha_us):
    """Ring allreduce of nbytes over n ranks, links of gbit Gbit/s, alpha_us per message."""
    return 1e3 * (2 * (n - 1) / n * nbytes / (gbit * 1e9 / 8) + 2 * (n - 1) * alpha_us * 1e-6)


def small_ms(n, alpha_us):
    return 2 * math.ceil(math.log2(n)) * alpha_us * 1e-3 if n > 1 else 0.0


def efficiency(step, nbytes, n, gbit, alpha_us, copy_ms=0.0):
    """No overlap: the allreduce follows the backward (what seqlearn does)."""
    return step / (step + ring_ms(nbytes, n, gbit, alpha_us) + copy_ms + small_ms(n, alpha_us))


def efficiency_overlap(step, flops, sizes, n, gbit, alpha_us, pcie_gbs=0.0):
    """Layer-wise overlap: each part's allreduce starts when its gradients are final."""
    t = link = step / 3
    total = sum(flops)
    for f, s in zip(flops, sizes):
        t += 2 * step / 3 * f / total
        link = max(link, t) + ring_ms(s, n, gbit, alpha_us) + (2e3 * s / (pcie_gbs * 1e9) if pcie_gbs else 0.0)
    return step / (max(t, link) + small_ms(n, alpha_us))


def rows(pcie_gbs, scale):
    out = [(c, H, L, B, T, "cpu", 1e3 * B * T / cps, "measured") for c, H, L, B, T, cps in CPU_MEASURED]
    out += [(c, H, L, B, T, "cpu", 1e3 * sum(part_flops(c, H, L, B, T)) / CPU_PEAK, "estimated")
            for c, H, L, B, T in LARGE]
    out += [(c, H, L, B, T, "cuda", ms, "measured") for c, H, L, B, T, ms in GPU_MEASURED]
    rate = sum(part_flops("lstm", 1024, 1, 64, 100)) / 19.72e-3
    out += [(c, H, L, B, T, "cuda", 1e3 * sum(part_flops(c, H, L, B, T)) / rate, "estimated")
            for c, H, L, B, T in LARGE]
    res = []
    for c, H, L, B, T, dev, ms, how in out:
        nbytes = 4 * params(c, H, L)
        copy = 2e3 * nbytes / (pcie_gbs * 1e9) if dev == "cuda" and pcie_gbs else 0.0
        res.append(dict(cell=c, H=H, L=L, B=B, T=T, dev=dev, step=ms / scale, how=how, bytes=nbytes,
                        copy=copy, flops=part_flops(c, H, L, B, T), sizes=part_bytes(c, H, L),
                        pcie=pcie_gbs if dev == "cuda" else 0.0))
    return res


def table(head, body, csv):
    if csv:
        return "\n".join(",".join(str(v).replace(",", "") for v in r) for r in [head] + body)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(str(v) for v in r) + " |" for r in body])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--alpha-us", type=float, default=5.0, help="latency per message, us (TCP/Ethernet-class)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[8, 64, 512])
    ap.add_argument("--gbits", type=float, nargs="+", default=[10, 25, 100], help="link bandwidths, Gbit/s")
    ap.add_argument("--pcie-gbs", type=float, default=25.0,
                    help="cuda rows: device-host copy GB/s for the gradients (0: CUDA-aware MPI, no copies)")
    ap.add_argument("--compute-scale", type=float, default=1.0, help="ranks this many times faster than measured")
    fmt = ap.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", default=True, help="markdown tables (default)")
    fmt.add_argument("--csv", action="store_true")
    a = ap.parse_args(argv)
    R = rows(a.pcie_gbs, a.compute_scale)
    grid = [(n, g) for n in a.ranks for g in a.gbits]
    cols = [f"{n} @{g:g}" for n, g in grid]
    name = [f"{r['cell']} {r['L']}x{r['H']} B{r['B']} T{r['T']} {r['dev']}" for r in R]
    bold = (lambda e: f"{100 * e:.1f}") if a.csv else (lambda e: f"**{100 * e:.1f}**" if e >= 0.9 else f"{100 * e:.1f}")
    print(f"alpha {a.alpha_us:g} us per message; cuda rows copy through the host at {a.pcie_gbs:g} GB/s"
          f" (0: CUDA-aware); step times / {a.compute_scale:g}\n")
    print(table(["configuration", "params", "MB per step", "step ms", "step", "FLOP per byte", "ms per MB"],
                [[nm, f"{r['bytes'] // 4:,}", f"{r['bytes'] / 1e6:.2f}", f"{r['step']:.1f}", r["how"],
                  f"{sum(r['flops']) / r['bytes']:,.0f}", f"{r['step'] / (r['bytes'] / 1e6):.2f}"]
                 for nm, r in zip(name, R)], a.csv))
    print("\nRing allreduce ms (ranks @ Gbit/s; + host copies on cuda rows):\n")
    print(table(["configuration"] + cols, [[nm] + [f"{ring_ms(r['bytes'], n, g, a.alpha_us) + r['copy']:.2f}"
                                                   for n, g in grid] for nm, r in zip(name, R)], a.csv))
    print("\nEfficiency %, no overlap (the allreduce after the backward, as seqlearn does it; bold >= 90):\n")
    eff = [[efficiency(r["step"], r["bytes"], n, g, a.alpha_us, r["copy"]) for n, g in grid] for r in R]
    print(table(["configuration"] + cols, [[nm] + [bold(e) for e in es] for nm, es in zip(name, eff)], a.csv))
    print("\nEfficiency %, layer-wise overlap (one allreduce per layer, started when its gradients are final):\n")
    ov = [[efficiency_overlap(r["step"], r["flops"], r["sizes"], n, g, a.alpha_us, r["pcie"]) for n, g in grid]
          for r in R]
    print(table(["configuration"] + cols, [[nm] + [bold(e) for e in es] for nm, es in zip(name, ov)], a.csv))
    print(f"\nConfigurations at >= 90 % (of {len(R)}):\n")
    print(table(["ranks @ Gbit/s", "no overlap", "layer-wise overlap"],
                [[c, sum(e[i] >= 0.9 for e in eff), sum(o[i] >= 0.9 for o in ov)] for i, c in enumerate(cols)], a.csv))
    return R


if __name__ == "__main__":
    main()
