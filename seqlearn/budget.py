"""A schedule's length fitted to a time budget (--max-time with a schedule that needs a length).

The number of steps a budget buys is not known before the run: it is estimated from the measured
time of a training step and of an evaluation, and refined as the run goes. The schedule reads a
progress in [0, 1] that stays continuous when the estimate changes: at each refinement the
progress reached so far is kept (the anchor) and the rest of it is spread over the steps now
expected to remain. All of it is state (Fit.state()), saved in the checkpoints, so a resumed run
continues the same schedule; with the same step times it ends bit-identical.

The budget counts the run's training time over all its invocations (the checkpoints' elapsed_s):
a run stopped after 20 of its 60 minutes and resumed has 40 minutes left.
"""
import math


class Fit:
    """budget_s: seconds the schedule spans (the run's time); start: the first step the progress
    counts (after warmup); end: the step expected to be the last."""

    def __init__(self, budget_s, start=0, end=None, anchor_step=None, anchor_progress=0.0):
        if not budget_s > 0 or not math.isfinite(budget_s):
            raise ValueError(f"a time budget must be a positive number of seconds, got {budget_s}")
        self.budget_s, self.start = float(budget_s), int(start)
        self.end = None if end is None else int(end)
        self.anchor_step = self.start if anchor_step is None else int(anchor_step)
        self.anchor_progress = float(anchor_progress)

    def progress(self, step):
        """How far the schedule is at step (0 until start, 1 at the expected end)."""
        if self.end is None or step <= self.anchor_step:
            return self.anchor_progress if step >= self.anchor_step else 0.0
        span = max(1, self.end - self.anchor_step)
        return min(1.0, self.anchor_progress + (step - self.anchor_step) * (1.0 - self.anchor_progress) / span)

    def refine(self, step, steps_left):
        """The run is at step and expects steps_left more: keep the progress reached, spread the
        rest over them."""
        steps_left = max(1, int(steps_left))
        if step > self.anchor_step:
            self.anchor_progress, self.anchor_step = self.progress(step), step
        self.end = max(self.anchor_step + 1, step + steps_left)

    def state(self):
        return {"budget_s": self.budget_s, "start": self.start, "end": self.end,
                "anchor_step": self.anchor_step, "anchor_progress": self.anchor_progress}

    @classmethod
    def from_state(cls, d):
        return cls(d["budget_s"], d["start"], d["end"], d["anchor_step"], d["anchor_progress"])


def steps_left(time_left, step_time, eval_time, eval_every):
    """Steps that fit into time_left seconds when a step takes step_time and every eval_every
    steps (and once at the end) an evaluation with its checkpoint takes eval_time."""
    per_step = step_time + eval_time / eval_every
    if not per_step > 0:
        return 1
    return max(0, int((time_left - eval_time) / per_step))


class StepClock:
    """The mean time of a training step in this invocation, without its first step (which
    compiles) and without evaluations."""

    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, dt, first):
        if not first:
            self.total += dt
            self.count += 1

    @property
    def mean(self):
        return self.total / self.count if self.count else None


class Limit:
    """A run's time limit (--max-time, None: none) and, where the schedule's length is fitted to
    it, the Fit. The time of the last evaluation is kept back from the limit: the run stops when
    what is left would not hold the final evaluation and checkpoint."""

    def __init__(self, max_time, fit=None):
        self.max_time, self.fit = max_time, fit
        self.steps = StepClock()
        self.eval_time = 0.0

    def time_left(self, invocation_s, elapsed_s):
        """Seconds left (None: no limit): of the fitted budget over the whole run, else of
        --max-time in this invocation."""
        if self.fit is not None and self.max_time:
            return self.fit.budget_s - elapsed_s
        return self.max_time - invocation_s if self.max_time else None

    def out_of_time(self, invocation_s, elapsed_s):
        left = self.time_left(invocation_s, elapsed_s)
        return left is not None and left <= self.eval_time

    def steps_left(self, invocation_s, elapsed_s, eval_every):
        """Steps expected to fit into the time left (None before a step was timed)."""
        left = self.time_left(invocation_s, elapsed_s)
        if left is None or self.steps.mean is None:
            return None
        return steps_left(left, self.steps.mean, self.eval_time, eval_every)
