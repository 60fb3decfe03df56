"""PNG figures for the experiments. matplotlib is optional (the "plot" extra)."""


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'seqlearn[plot]' "
                              "(or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def check_available():
    """Raise PlotUnavailable now rather than after a long run."""
    _pyplot()


def _save(fig, path):
    """Save as PNG; with Pillow (a matplotlib dependency) reduce it to a 64-colour palette, which
    keeps line plots sharp at a third of the size."""
    plt = _pyplot()
    fig.savefig(path)
    plt.close(fig)
    try:
        from PIL import Image
        with Image.open(path) as im:
            small = im.convert("RGB").quantize(colors=64)
        small.save(path, format="PNG", optimize=True)
    except Exception:       # keep matplotlib's full-colour file
        pass


def _label(row):
    return row["cell"] + ("" if row["variant"] == "-" else "-" + row["variant"])


def memory_plot(rows, path, title=None):
    """Answer accuracy against lag (left) and updates to solve against lag (right), one line per cell."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
    cells = list(dict.fromkeys(_label(r) for r in rows))
    for name in cells:
        rs = sorted((r for r in rows if _label(r) == name), key=lambda r: r["lag"])
        lags = [r["lag"] for r in rs]
        a1.plot(lags, [r["accuracy"] for r in rs], "o-", label=f"{name} (H={rs[0]['hidden']})")
        solved = [(r["lag"], r["steps_to_solve"]) for r in rs if r["steps_to_solve"]]
        if solved:
            a2.plot(*zip(*solved), "o-", label=name)
    if rows:
        a1.axhline(rows[0]["chance"], color="gray", ls="--", lw=1, label="chance")
    a1.set_xscale("log")
    a1.set_xlabel("lag (characters between key and answer)")
    a1.set_ylabel("answer accuracy")
    a1.set_ylim(0, 1.05)
    a1.legend(fontsize=7, loc="lower left")
    a2.set_xscale("log")
    a2.set_yscale("log")
    a2.set_xlabel("lag")
    a2.set_ylabel("updates to solve (solved runs)")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.set_xticks(sorted({r["lag"] for r in rows}))
        a.get_xaxis().set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
        a.minorticks_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def compare_plot(rows, path, title=None):
    """Validation bpc against training seconds (left, one line per run) and final validation bpc
    against parameters (right, one line per cell). rows: compare.run's rows (with "curve")."""
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
    names = list(dict.fromkeys(r["name"] for r in rows))
    colors = {n: f"C{i}" for i, n in enumerate(names)}
    sizes = sorted({r["size"] for r in rows})
    styles = {s: ls for s, ls in zip(sizes, ["-", "--", ":", "-.", (0, (5, 1)), (0, (1, 3))] * 4)}
    for r in rows:
        pts = [(p["seconds"], p["val_bpc"]) for p in r["curve"][1:]]    # skip the untrained point
        if pts:
            a1.plot(*zip(*pts), color=colors[r["name"]], ls=styles[r["size"]],
                    label=f"{r['name']} H={r['hidden']} ({r['params'] / 1000:.0f}k)")
    a1.set_xlabel(f"training seconds ({rows[0]['clock']} clock)" if rows else "training seconds")
    a1.set_ylabel("validation bpc (16k-char slice)")
    a1.legend(fontsize=7)
    for n in names:
        rs = sorted((r for r in rows if r["name"] == n), key=lambda r: r["params"])
        a2.plot([r["params"] for r in rs], [r["val_bpc"] for r in rs], "o-", color=colors[n], label=n)
    a2.set_xscale("log")
    ticks = sorted({r["params"] for r in rows if r["name"] == names[0]}) if rows else []
    a2.set_xticks(ticks)
    a2.set_xticklabels([f"{t / 1000:.0f}k" for t in ticks])
    a2.minorticks_off()
    a2.set_xlabel("parameters")
    a2.set_ylabel("validation bpc at the end")
    a2.legend(fontsize=7)
    for a in (a1, a2):
        a.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
