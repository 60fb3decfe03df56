"""Where a training step's time goes: per-phase timing of the backend kernels.

The profiler never touches model.py. It builds a CharLM, then puts a timing proxy between the model
and its backend: ``model.backend`` and ``model.cell_impl.mod`` are swapped for objects that forward
every call to the real backend module and record (phase, start, end) around it. A call made while
another is being timed (the sampling step runs a whole forward pass) belongs to the outer phase.

Training steps alternate between the plain model and the proxied one, so the step time with and
without instrumentation comes from the same stretch of (shared, noisy) machine time.

Phases (``PHASE_LABELS``): input gather/projection, recurrent forward per layer, recurrent backward
per layer, weight-gradient products, head and loss, clipping, optimizer update, other backend calls
(zeroing, copies, transfers), and what is left of the step: Python glue. The batch-1 sampling step
is timed separately (it is not part of a training step).

The recurrent weight gradient ``dW_hh += dG.T @ h_prev`` is computed inside each backend's
``backward`` (one product after the time loop). Where the cell module calls a plain Python function
for it (``SUBPHASE_HOOKS``, e.g. the cpu backend's ``wgrad``), that function is wrapped for the run
and timed in place; where the product is inside jitted code, it is timed separately on the same
shapes through the same routine and moved from "recurrent backward" to "weight-gradient products"
(marked ``estimated``). On cuda it stays inside the recurrent backward.

GPU: every proxied call is followed by ``cuda.synchronize()`` so the phase times are wall times of
finished work; each kernel launch is also bracketed by CUDA events, and each kernel's registers,
shared and local memory per thread are read from numba-cuda. Under the simulator everything runs,
but times say nothing about a GPU: ``times_meaningful`` is false.

Modules: proxy (the recorder and the timing proxy), phases (phase names, classification, FLOPs),
dwhh (the separately timed dW_hh product), compile_stats (JIT compile times, cache counters),
gpu (simulator check, CUDA kernel events and resources), machine (machine description, product
peak), memory (byte counts, peak RSS), optimizer (the profiled step's optimizer), text (text and
batches), report (JSON, Chrome trace, text table), run (run_profile, the driver).
"""
from .compile_stats import CompileListener, compile_report
from .gpu import KernelTimer
from .machine import measure_peak
from .memory import activation_memory, peak_rss_bytes
from .phases import CELL_MODULES, PHASE_LABELS, SUBPHASE_HOOKS, label, model_flops, phase_flops, sample_flops
from .proxy import Recorder, _hooks
from .report import chrome_trace, format_report, to_json
from .run import run_profile
from .text import encode, load_text

__all__ = ["CELL_MODULES", "PHASE_LABELS", "SUBPHASE_HOOKS", "CompileListener", "KernelTimer", "Recorder",
           "_hooks", "activation_memory", "chrome_trace", "compile_report", "encode", "format_report", "label",
           "load_text", "measure_peak", "model_flops", "peak_rss_bytes", "phase_flops", "run_profile",
           "sample_flops", "to_json"]
