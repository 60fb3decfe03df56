"""seqlearn experiment memory | compare: measure what the lecture claims."""
import json
import math

import click

from seqlearn.experiments import compare as C, memory as M
from seqlearn.experiments.plots import PlotUnavailable, check_available
from seqlearn.experiments.threads import blas_threads

from .errors import friendly
from .options import check_output, device_option


def _int_list(ctx, param, value):
    if value is None:
        return None
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter("expected comma-separated integers, e.g. 5,20,50") from None
    if not out or min(out) < 2:
        raise click.BadParameter("lags must be integers >= 2")
    return out


def _name_list(choices):
    def cb(ctx, param, value):
        if value is None:
            return None
        out = tuple(v.strip() for v in value.split(",") if v.strip())
        bad = [v for v in out if v not in choices]
        if bad or not out:
            raise click.BadParameter(f"unknown {bad[0] if bad else 'empty list'}; choose from {', '.join(choices)}")
        return out
    return cb


def _plot_ready(plot):
    if plot:
        try:
            check_available()
        except PlotUnavailable as e:
            raise click.ClickException(str(e)) from None


def _progress(quiet, to_stderr):
    if quiet:
        return None
    return lambda msg: click.echo(msg, err=to_stderr)


def _fmt(v, spec):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


@click.group()
def experiment():
    """Experiments that measure the lecture's claims about gated cells.

    \b
    Examples:
      seqlearn experiment memory --quick
      seqlearn experiment memory --plot docs/img/memory.png
      seqlearn experiment compare data/tinyshakespeare.txt --quick
    """


@experiment.command()
@click.option("--lags", callback=_int_list, default=None,
              help="Comma-separated lags (default 5,20,50,100,200; --quick: 5,20,50).")
@click.option("--cells", callback=_name_list(M.CELL_NAMES), default=None,
              help=f"Comma-separated cells (default all: {','.join(M.CELL_NAMES)}).")
@click.option("--hidden", type=click.IntRange(min=1), default=32, show_default=True,
              help="Hidden size of the plain lstm; every other cell gets the hidden size whose parameter "
                   "count is nearest to that lstm's.")
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-2, show_default=True,
              help="Adam learning rate.")
@click.option("--clip", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Gradient clipping threshold (0: none).")
@click.option("--clip-mode", type=click.Choice(["norm", "value"]), default="norm", show_default=True)
@click.option("--carry-bias", type=float, default=3.0, show_default=True,
              help="Initial bias of the gate that keeps the memory: lstm forget gate, gru update gate.")
@click.option("--max-steps", type=click.IntRange(min=1), default=None,
              help="Updates per run before giving up (default 3000; --quick: 600).")
@click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Also give up after this many wall-clock seconds per run (default: no limit, so that "
                   "results do not depend on the machine's load).")
@click.option("--solve-acc", type=click.FloatRange(0, 1), default=0.99, show_default=True,
              help="Answer accuracy on 256 held-out sequences that counts as solved (training stops).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quick", is_flag=True, help="Lags 5,20,50 and short runs: about one minute.")
@click.option("--plot", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write accuracy and updates-to-solve against lag as a PNG (needs matplotlib).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as a JSON list instead of a table.")
@click.option("--inspect", "inspect_page", type=click.Path(dir_okay=False), default=None,
              help="Write an inspect page (HTML) of the lstm trained at the longest lag (else the first cell): "
                   "the unit that carries the key, step by step.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="BLAS threads (1 is fastest for these small matrices on a few cores).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@device_option()
@friendly
def memory(lags, cells, hidden, batch, lr, clip, clip_mode, carry_bias, max_steps, max_seconds, solve_acc,
           seed, quick, plot, as_json, inspect_page, threads, quiet, device):
    """Which cells remember one character across LAG steps of distractors.

    The task (remember the first symbol, after Hochreiter & Schmidhuber 1997): a key A-D, then
    lag-2 random fillers a-d, then "?"; the answer is the key. Every cell (rnn, gru in both
    variants, lstm, lstm with peepholes) is trained from scratch for every lag at an equal
    parameter budget with Adam, until the answer accuracy on 256 held-out sequences reaches
    --solve-acc or the run's step/time limit. Prints final accuracy (1000 fresh sequences) and
    the number of updates it took to solve, per cell and lag.

    \b
    Examples:
      seqlearn experiment memory --quick
      seqlearn experiment memory --plot memory.png --json > memory.json
      seqlearn experiment memory --cells lstm,gru-torch --lags 100 --carry-bias 0
      seqlearn experiment memory --cells lstm --lags 50 --inspect memory.html
    """
    _plot_ready(plot)
    if inspect_page:
        check_output(inspect_page, [])
    lags = lags or (M.QUICK_LAGS if quick else M.DEFAULT_LAGS)
    cells = cells or M.CELL_NAMES
    shown = "lstm" if "lstm" in cells else cells[0]
    kept = {}
    _, shown_cell, shown_variant = {c[0]: c for c in M.CELLS}[shown]

    def keep(model, task, row):
        if task.lag == max(lags) and (row["cell"], row["variant"]) == (shown_cell, shown_variant):
            kept.update(model=model, task=task)
    max_steps = max_steps or (600 if quick else 3000)
    log = _progress(quiet, to_stderr=True)
    if log:
        log(f"memory: lags {','.join(map(str, lags))}, cells {','.join(cells)}, lstm H={hidden}, batch {batch}, "
            f"adam lr {lr:g}, clip {clip:g} ({clip_mode}), carry bias {carry_bias:g}, "
            f"at most {max_steps} updates" + (f" / {max_seconds:g} s" if max_seconds else "") + f" per run, {device}")
    done = (lambda r: log(f"{r['name']:<14} lag {r['lag']:>4}  acc {_fmt(r['accuracy'], '.3f')}  "
                          f"solved at {_fmt(r['steps_to_solve'], 'd')}  ({r['steps']} updates, "
                          f"{r['seconds']:.1f} s)")) if log else None
    with blas_threads(threads):
        rows = M.run(lags, cells, hidden=hidden, batch=batch, lr=lr, clip=clip, clip_mode=clip_mode,
                     carry_bias=carry_bias, max_steps=max_steps, max_seconds=max_seconds, solve_acc=solve_acc,
                     seed=seed, device=device, on_row=done, eval_every=25,
                     on_model=keep if inspect_page else None)
    if plot:
        from seqlearn.experiments.plots import memory_plot
        budget = M.num_params("lstm", len(M.RememberFirst(2).vocab), hidden)
        memory_plot(rows, plot, title=f"remember the first symbol: ~{budget:,} parameters per cell, "
                                      f"adam lr {lr:g}, clip {clip:g}, carry bias {carry_bias:g}")
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    else:
        click.echo(memory_table(rows, max_steps))
    if plot and log:
        log(f"wrote {plot}")
    if inspect_page:
        _write_memory_page(inspect_page, kept, shown, log)


def _write_memory_page(path, kept, shown, log):
    from seqlearn.checkpoint_file import atomic_write
    from seqlearn.inspection import render
    from seqlearn.inspection.memory import memory_page_data
    if not kept:
        raise click.ClickException(f"no {shown} model to inspect: its run at the longest lag diverged")
    page = render(memory_page_data(kept["model"], kept["task"]))
    atomic_write(path, lambda f: f.write(page.encode("utf-8")), suffix=".html")
    if log:
        log(f"wrote {path}: {shown} at lag {kept['task'].lag}")


def memory_table(rows, max_steps=None):
    """A Markdown table: one row per cell, one column per lag: accuracy and updates to solve."""
    lags = sorted({r["lag"] for r in rows})
    names = list(dict.fromkeys(r["name"] for r in rows))
    by = {(r["name"], r["lag"]): r for r in rows}
    head = "| cell | H | params | " + " | ".join(f"lag {lag}" for lag in lags) + " |"
    out = [head, "|" + "---|" * (3 + len(lags))]
    for n in names:
        first = next(r for r in rows if r["name"] == n)
        cols = []
        for lag in lags:
            r = by.get((n, lag))
            if r is None:
                cols.append("")
            else:
                s = r["steps_to_solve"]
                cols.append(f"{_fmt(r['accuracy'], '.2f')} ({s if s else 'not solved'})")
        out.append(f"| {n} | {first['hidden']} | {first['params']:,} | " + " | ".join(cols) + " |")
    out.append("")
    if rows:
        out.append("answer accuracy on 1000 fresh sequences (in brackets: updates until the accuracy on 256 "
                   "held-out sequences reached the solve threshold"
                   + (f"; not solved within {max_steps} updates" if max_steps else "")
                   + f"); chance {rows[0]['chance']:.2f}")
    return "\n".join(out)


@experiment.command()
@click.argument("text", type=click.Path(exists=True, dir_okay=False))
@click.option("--sizes", callback=_int_list, default=None,
              help="Comma-separated hidden sizes of the lstm; every other cell is matched to each in "
                   "parameters (default 32,64,128; --quick: 32,64).")
@click.option("--cells", callback=_name_list(tuple(C.CELLS)), default=None,
              help=f"Comma-separated cells (default lstm,gru-torch; any of {','.join(C.CELLS)}).")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Training seconds per run, the same for every run (default 120; --quick: 8).")
@click.option("--clock", type=click.Choice(list(C.CLOCKS)), default="cpu", show_default=True,
              help="cpu: this process's CPU seconds (with one BLAS thread, what the run takes on an idle "
                   "machine, independent of other load); wall: elapsed seconds.")
@click.option("--match", type=click.Choice(["params", "hidden"]), default="params", show_default=True,
              help="params: every cell gets the parameter count of the lstm of each size; hidden: every cell "
                   "gets the size itself as its hidden size (a gru is then smaller and cheaper).")
@click.option("--points", type=click.IntRange(min=1), default=12, show_default=True,
              help="Validation points on each curve.")
@click.option("--layers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--seq-len", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True,
              help="Adam learning rate.")
@click.option("--clip", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Gradient norm clipping threshold (0: none).")
@click.option("--val-frac", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1,
              show_default=True, help="The validation split: this fraction at the end of the text.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Keep each run's directory (checkpoints, config) under this folder.")
@click.option("--quick", is_flag=True, help="Sizes 32,64 and 8 s per run: about one minute.")
@click.option("--plot", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write validation bpc against time and against parameters as a PNG (needs matplotlib).")
@click.option("--json", "as_json", is_flag=True, help="Print the rows (with their curves) as a JSON list.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="BLAS threads (1 is fastest for these small matrices on a few cores).")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines.")
@device_option()
@friendly
def compare(text, sizes, cells, seconds, clock, match, points, layers, batch, seq_len, lr, clip, val_frac, seed, out,
            quick, plot, as_json, threads, quiet, device):
    """Train lstm and gru on TEXT at equal parameter counts for equal training time.

    For every size, the lstm has that hidden size and every other cell the hidden size whose
    parameter count is nearest. Every run sees the same data in the same order from the same
    seed, for the same number of training seconds (validation not counted). Prints the updates
    each run managed and its validation bpc (over the whole validation split); --plot draws
    validation bpc (on a fixed 16k-character slice) against training time and the final bpc
    against parameters.

    \b
    Examples:
      seqlearn experiment compare ../shared/data/tinyshakespeare.txt --quick
      seqlearn experiment compare input.txt --plot compare.png --json > compare.json
      seqlearn experiment compare input.txt --cells lstm,gru-torch,gru-cho --sizes 64 --seconds 300
    """
    _plot_ready(plot)
    sizes = sizes or (C.QUICK_SIZES if quick else C.DEFAULT_SIZES)
    cells = cells or C.DEFAULT_CELLS
    seconds = seconds or (8.0 if quick else 120.0)
    log = _progress(quiet, to_stderr=True)
    if log:
        log(f"compare on {text}: sizes {','.join(map(str, sizes))}, cells {','.join(cells)}, {seconds:g} {clock} "
            f"seconds per run, equal {match}, {layers} layer(s), batch {batch}x{seq_len}, adam lr {lr:g}, "
            f"clip {clip:g}, {device}")
    with blas_threads(threads):
        rows, curves = C.run(text, sizes, cells, seconds=seconds, points=points, layers=layers, batch=batch,
                             seq_len=seq_len, lr=lr, clip=clip, val_frac=val_frac, clock=clock, match=match, seed=seed,
                             device=device, out=out, log=log)
    if plot:
        from seqlearn.experiments.plots import compare_plot
        compare_plot(rows, plot, title=f"{text.rsplit('/', 1)[-1]}: {seconds:g} {clock} s per run, equal {match}, "
                                       f"{layers} layer(s), batch {batch}x{seq_len}, adam lr {lr:g}")
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    else:
        click.echo(compare_table(rows))
    if plot and log:
        log(f"wrote {plot}")


def compare_table(rows):
    out = ["| size | cell | H | params | updates | ms / update | characters seen | val bpc |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['size']} | {r['name']} | {r['hidden']} | {r['params']:,} | {r['steps']:,} | "
                   f"{r['ms_per_step']:.1f} | {r['chars']:,} | {r['val_bpc']:.3f} |")
    if rows:
        out.append("")
        out.append(f"each run: {rows[0]['seconds']:.0f} {rows[0]['clock']} seconds of training; val bpc over "
                   f"the whole validation split")
    return "\n".join(out)
