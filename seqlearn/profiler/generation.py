"""What `seqlearn sample` costs per character: Sampler.generate, the path the CLI streams from
(the jitted loop on cpu, the device loop on cuda; on ref it is the profiler's sampling step)."""
import statistics
import time

from ..sample import Sampler

SHORT = 32          # the first block of the cpu loop


def time_generation(model, chars, seed=0, repeats=3, simulator=False):
    """Marginal ms per character of Sampler.generate at batch 1: the time for SHORT + chars
    characters minus the time for SHORT, over chars (the per-run costs, packing the weights and
    the first call's hand-off, cancel out). Median of `repeats` pairs after one warm-up run."""
    fast = Sampler(model, seed=seed).fast
    if fast is None:
        how = "not measured: this backend samples through model.logits, the sampling step above"
    elif simulator:
        how = "not measured under the CUDA simulator"
    else:
        loop = {"cpu": "the jitted generation loop (seqlearn.cpu.sample_kernels)",
                "cuda": "the device generation loop (seqlearn.cuda.sample)"}.get(model.device, "Sampler.generate")
        how = f"{loop}; marginal time per character of {chars} after {SHORT}"
    if chars < 1 or simulator or fast is None:
        return {"name": "generate_b1", "ms_per_char": None, "chars": chars, "how": how}

    def run(n):
        s = Sampler(model, seed=seed)
        t0 = time.perf_counter()
        for _ in s.generate(n):
            pass
        return time.perf_counter() - t0

    run(SHORT)
    per = []
    for _ in range(repeats):
        short = run(SHORT)
        per.append((run(SHORT + chars) - short) / chars * 1e3)
    return {"name": "generate_b1", "ms_per_char": max(statistics.median(per), 1e-9), "chars": chars,
            "how": how}
