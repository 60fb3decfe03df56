"""The cpu backend's worker threads (seqlearn/cpu/_threads.py): results in order, every job on its
own thread at once (kernels meet at barriers), errors raised in the caller, callers on several
Python threads, a forked child, and resizing."""
import os
import threading

import numpy as np
import pytest

from seqlearn.cpu import _threads, config
from seqlearn.cpu._sync import barrier, bump


@pytest.fixture
def fresh_pool():
    _threads._drop_pool()
    yield
    _threads._drop_pool()


def _counters(n):
    return [(np.zeros(8, np.int64), 0) for _ in range(n)]


def test_results_in_order_and_each_job_runs_once(fresh_pool):
    args = _counters(4)
    for rep in range(1, 6):
        assert _threads.run(bump, args) == [rep] * 4
    assert [int(a[0][0]) for a in args] == [5] * 4


def test_jobs_run_concurrently_and_meet_at_a_barrier(fresh_pool):
    bar = np.zeros(8, np.int64)
    n = 3
    # every call waits for the other two: run would never return if any job waited for a free thread
    assert _threads.run_sync(barrier, [(bar, n, 0)] * n) == [1] * n
    assert int(bar[0]) == n


def test_a_failing_job_raises_in_the_caller_and_the_pool_goes_on(fresh_pool):
    good = (np.zeros(8, np.int64), 0)
    bad = (np.zeros(8, np.float64), 0)          # no such signature: TypeError on the worker
    with pytest.raises(TypeError):
        _threads.run(bump, [good, bad])
    with pytest.raises(TypeError):
        _threads.run(bump, [bad, good])
    assert sorted(_threads.run(bump, [good, good])) == [3, 4]       # good ran once in each failed call
    assert all(v is None for v in _threads._pool.jobs + _threads._pool.results)   # nothing held


def test_callers_on_several_python_threads(fresh_pool):
    errors, per = [], 200

    def caller():
        args = _counters(2)
        try:
            for i in range(1, per + 1):
                if _threads.run(bump, args) != [i, i]:
                    errors.append(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=caller) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


def test_resizing_stops_the_old_workers(fresh_pool):
    _threads.run(bump, _counters(4))
    old = _threads._pool
    assert old.n >= 3
    _threads.set_num_threads(_threads.NUM_THREADS)
    assert _threads._pool is None
    assert not any(t.is_alive() for t in old.threads)
    assert _threads.run(bump, _counters(2)) == [1, 1]


def test_idle_workers_sleep_and_wake(fresh_pool, monkeypatch):
    monkeypatch.setattr(config, "SPIN", 10)       # the worker gives up spinning at once
    args = _counters(2)
    _threads.run(bump, args)
    threading.Event().wait(0.05)                    # it is asleep on the condition now
    assert _threads.run(bump, args) == [2, 2]
    assert _threads._pool.sleeps >= 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")
def test_forked_child_gets_its_own_workers(fresh_pool):
    _threads.run(bump, _counters(2))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:        # pragma: no cover - the child reports through the pipe
        try:
            ok = _threads.run(bump, _counters(2)) == [1, 1]
            os.write(w, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.waitpid(pid, 0)
    assert got == b"1"
