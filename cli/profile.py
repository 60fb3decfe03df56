"""seqlearn profile: where a training step's time goes, phase by phase."""
import json

import click

from .errors import friendly
from .options import config_option, device_option, model_options, threads_option


@click.command()
@click.argument("text", required=False, type=click.Path(exists=True, dir_okay=False))
@model_options(hidden=128, layers=2)
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True, help="Batch size B.")
@click.option("--seq-len", type=click.IntRange(min=1), default=64, show_default=True,
              help="Sequence length T (time steps per training step).")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True,
              help="Measured steps, each run twice: once plain, once instrumented (alternating).")
@click.option("--warmup", type=click.IntRange(min=1), default=2, show_default=True,
              help="Steps run first and not measured (they compile or load the kernels).")
@config_option("dtype")
@click.option("--sample-chars", type=click.IntRange(min=0), default=20, show_default=True,
              help="Batch-1 sampling steps (model.logits) timed after training; the generation loop of "
                   "`seqlearn sample` is then timed over 10x as many characters (at least 256; 0: neither).")
@click.option("--peak-size", type=click.IntRange(min=64), default=2048, show_default=True,
              help="n of the n x n x n float32 product that measures the machine's peak.")
@config_option("optimizer", help="Optimizer of the profiled step.")
@click.option("--clip", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Clip the global gradient norm to this (0: no clipping).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--encoding", default="utf-8", show_default=True, help="Encoding of TEXT.")
@device_option()
@threads_option()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of the table.")
@click.option("--trace", "trace", type=click.Path(dir_okay=False, writable=True),
              help="Write a Chrome trace (chrome://tracing, Perfetto) of the instrumented steps to FILE.")
@friendly
def profile(text, cell, gru_variant, peephole, hidden, layers, embed, batch, seq_len, steps, warmup, dtype,
            sample_chars, peak_size, optimizer, clip, seed, encoding, device, as_json, trace):
    """Time each phase of a training step: input projection, recurrent forward and backward per
    layer, weight-gradient products, head and loss, clipping, optimizer, and a batch-1 sampling
    step; GFLOP/s against the machine's float32 product peak; JIT compile times; memory.

    TEXT is a UTF-8 text file (default: Python's built-in pydoc topics). See docs/profile.md.

    \b
    Examples:
      seqlearn profile
      seqlearn profile --cell gru --gru-variant cho --hidden 256 --batch 64 --seq-len 100
      seqlearn profile input.txt --device ref --steps 5 --json
      seqlearn profile --trace step.json   # open in https://ui.perfetto.dev
    """
    from seqlearn import profiler

    body = profiler.load_text(text, encoding) if text else None
    if body is not None and not body:
        raise click.ClickException(f"{text}: the file is empty")
    rep = profiler.run_profile(body, cell=cell, gru_variant=gru_variant, peephole=peephole, hidden=hidden,
                               layers=layers, embed=embed, batch=batch, seq_len=seq_len, steps=steps,
                               warmup=warmup, device=device, dtype=dtype, sample_chars=sample_chars,
                               seed=seed, peak_n=peak_size, optimizer=optimizer, clip=clip)
    if trace:
        with open(trace, "w", encoding="utf-8") as f:
            json.dump(profiler.chrome_trace(rep), f)
    if as_json:
        click.echo(json.dumps(profiler.to_json(rep), indent=1, default=_default))
    else:
        click.echo(profiler.format_report(rep))
        if trace:
            click.echo(f"\ntrace: {trace} (open in chrome://tracing or https://ui.perfetto.dev)")


def _default(o):
    try:
        import numpy as np
        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    return str(o)
