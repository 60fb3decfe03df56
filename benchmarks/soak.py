"""Soak: an hour of training with frequent evaluations and checkpoints, then a long sampling run,
watching the process from outside: resident memory (VmRSS, peak VmHWM), open file descriptors and
throughput, every --every seconds.

    python benchmarks/soak.py --train-minutes 60 --sample-minutes 10 --out soak.jsonl

Trains on ../shared/data/tinyshakespeare.txt when present (else the built-in corpus), evaluating
and writing last.npz every 50 steps. Prints the curve (one line per sample) and a summary: memory
and descriptors after the first minute against the end, throughput in the first and last quarter.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHAKESPEARE = os.path.join(HERE, "..", "..", "shared", "data", "tinyshakespeare.txt")
CLI = [sys.executable, "-m", "seqlearn"]


def proc_stats(pid):
    """(VmRSS MiB, VmHWM MiB, open descriptors) of a live process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            kv = dict(line.split(":", 1) for line in f if ":" in line)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        return None
    if "VmRSS" not in kv:                # a zombie: exited, not yet reaped
        return None
    mib = lambda k: int(kv[k].split()[0]) / 1024   # noqa: E731
    return mib("VmRSS"), mib("VmHWM"), fds


def _last_rate(metrics):
    try:
        with open(metrics, encoding="utf-8") as f:
            lines = f.readlines()
        return json.loads(lines[-1])["chars_per_s"] if lines else None
    except (OSError, ValueError, KeyError):
        return None


def watch(p, seconds, every, rate, log, phase):
    """Sample p every `every` seconds for `seconds` (or until it exits); rate() gives chars/s."""
    t0, rows = time.monotonic(), []
    while p.poll() is None and time.monotonic() - t0 < seconds:
        time.sleep(every)
        s = proc_stats(p.pid)
        if s is None:
            break
        row = {"phase": phase, "t_s": round(time.monotonic() - t0, 1), "rss_mib": round(s[0], 1),
               "peak_rss_mib": round(s[1], 1), "fds": s[2], "chars_per_s": rate()}
        rows.append(row)
        log.write(json.dumps(row) + "\n")
        log.flush()
        print(f"{phase:6s} {row['t_s']:7.0f} s  rss {row['rss_mib']:7.1f} MiB  peak {row['peak_rss_mib']:7.1f} MiB"
              f"  fds {row['fds']:3d}  {row['chars_per_s'] or 0:10,.0f} chars/s", flush=True)
    return rows


def summary(rows, phase):
    if len(rows) < 8:
        return f"{phase}: too short to judge ({len(rows)} samples)"
    warm = [r for r in rows if r["t_s"] >= 60] or rows
    q = max(len(warm) // 4, 1)
    med = lambda xs: sorted(xs)[len(xs) // 2]       # noqa: E731
    rates = [r["chars_per_s"] or 0 for r in warm]
    return (f"{phase}: rss {warm[0]['rss_mib']:.1f} -> {warm[-1]['rss_mib']:.1f} MiB after the first minute "
            f"(peak {rows[-1]['peak_rss_mib']:.1f}), fds {min(r['fds'] for r in warm)}-{max(r['fds'] for r in warm)}, "
            f"throughput {med(rates[:q]):,.0f} -> {med(rates[-q:]):,.0f} chars/s (first and last quarter medians), "
            f"{rows[-1]['t_s'] / 60:.1f} min")


def plot(jsonl, png):
    """The curve: resident memory, descriptors and throughput against minutes, per phase."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(jsonl) as f:
        rows = [json.loads(line) for line in f]
    fig, axes = plt.subplots(3, 2, figsize=(10, 6.5), sharex="col", gridspec_kw={"width_ratios": [6, 1.4]})
    for col, phase in enumerate(("train", "sample")):
        rs = [r for r in rows if r["phase"] == phase]
        t = [r["t_s"] / 60 for r in rs]
        for ax, key, label in zip(axes[:, col], ("rss_mib", "fds", "chars_per_s"),
                                  ("resident MiB", "open fds", "chars/s")):
            ax.plot(t, [r[key] or 0 for r in rs], lw=1)
            if key == "rss_mib":
                ax.plot(t, [r["peak_rss_mib"] for r in rs], lw=1, ls="--", label="peak")
                ax.legend(loc="lower right", fontsize=8)
            top = max([r[key] or 0 for r in rs] + [r["peak_rss_mib"] for r in rs if key == "rss_mib"] + [1])
            ax.set_ylim(0, 1.2 * top)
            ax.set_ylabel(label if col == 0 else "")
        axes[0, col].set_title(f"{phase}")
        axes[-1, col].set_xlabel("minutes")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-minutes", type=float, default=60)
    ap.add_argument("--sample-minutes", type=float, default=10)
    ap.add_argument("--every", type=float, default=10, help="Seconds between samples.")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="soak.jsonl", help="The samples, as JSON lines.")
    ap.add_argument("--plot", default=None, help="Draw the curve of --out into this PNG (after a run, or alone with --plot-only).")
    ap.add_argument("--plot-only", action="store_true", help="Only draw --out's samples into --plot.")
    a = ap.parse_args(argv)
    if a.plot_only:
        plot(a.out, a.plot)
        return 0
    text = [SHAKESPEARE] if os.path.exists(SHAKESPEARE) else []
    with tempfile.TemporaryDirectory() as tmp, open(a.out, "w") as log:
        run = os.path.join(tmp, "run")
        train = subprocess.Popen(CLI + ["train", *text, "--hidden", "128", "--layers", "2", "--eval-every", "50",
                                        "--log-every", "10", "--max-time", f"{a.train_minutes}m",
                                        "--threads", str(a.threads), "--out", run],
                                 stdout=subprocess.DEVNULL)
        rows = watch(train, a.train_minutes * 60 + 120, a.every,
                     lambda: _last_rate(os.path.join(run, "metrics.jsonl")), log, "train")
        train.wait()
        sample = subprocess.Popen(CLI + ["sample", run, "--length", str(10 ** 9), "--threads", str(a.threads)],
                                  stdout=subprocess.PIPE)
        count = {"n": 0, "t": time.monotonic(), "last": 0, "rate": None}

        def drain():
            while True:
                b = sample.stdout.read(1 << 16)
                if not b:
                    return
                count["n"] += len(b)

        def rate():
            now = time.monotonic()
            r = (count["n"] - count["last"]) / max(now - count["t"], 1e-9)
            count.update(t=now, last=count["n"])
            return round(r, 1)
        threading.Thread(target=drain, daemon=True).start()
        srows = watch(sample, a.sample_minutes * 60, a.every, rate, log, "sample")
        sample.kill()
        sample.wait()
    print(summary(rows, "train"))
    print(summary(srows, "sample"))
    if a.plot:
        plot(a.out, a.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
