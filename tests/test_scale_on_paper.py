"""benchmarks/scale_on_paper.py: its parameter counts are the model's, its ring formula and
efficiencies behave, and it prints its tables."""
import re

import pytest

from test_benchmarks import _load


@pytest.fixture(scope="module")
def sop():
    return _load("scale_on_paper")


@pytest.mark.parametrize("cell,H,L", [("lstm", 32, 2), ("gru", 24, 1), ("gru", 16, 3)])
def test_param_count_is_the_models(sop, cell, H, L):
    from seqlearn.model import CharLM
    vocab = [chr(33 + i) for i in range(sop.V)]
    m = CharLM(vocab, cell=cell, hidden_size=H, num_layers=L, device="ref")
    assert sop.params(cell, H, L) == m.num_params
    assert sum(sop.part_bytes(cell, H, L)) == 4 * m.num_params


def test_param_count_by_hand(sop):
    # lstm H=128, L=1, V=65: 4H(V+H) + 2*4H + V*H + V
    assert sop.params("lstm", 128, 1) == 4 * 128 * (65 + 128) + 2 * 4 * 128 + 65 * 128 + 65 == 108_225


def test_flops_match_train_speed(sop):
    ts = _load("train_speed")
    for cfg in ts.ROWS:
        assert sum(sop.part_flops(*cfg)) == ts.flops_per_step(*cfg)


def test_ring_time_by_hand(sop):
    # 1 GB over 4 ranks at 10 Gbit/s (1.25 GB/s): 2*3/4 * 1e9/1.25e9 s = 1.2 s; latency 2*3*5 us = 0.03 ms
    assert sop.ring_ms(1e9, 4, 10, 5.0) == pytest.approx(1200.03, rel=1e-12)
    assert sop.ring_ms(1e9, 4, 10, 0.0) == pytest.approx(2 * sop.ring_ms(1e9, 4, 20, 0.0))
    assert sop.ring_ms(0, 2, 10, 5.0) == pytest.approx(2 * 1 * 5e-3)


def test_efficiency_in_range_and_falls_with_ranks(sop):
    for r in sop.rows(25.0, 1.0):
        for g in (10, 25, 100):
            e = [sop.efficiency(r["step"], r["bytes"], n, g, 5.0, r["copy"]) for n in (2, 8, 64, 512)]
            o = [sop.efficiency_overlap(r["step"], r["flops"], r["sizes"], n, g, 5.0, r["pcie"])
                 for n in (2, 8, 64, 512)]
            for seq in (e, o):
                assert all(0 < v <= 1 for v in seq)
                assert all(a > b for a, b in zip(seq, seq[1:])), (r["cell"], r["H"], g, seq)
            assert sop.efficiency(r["step"], r["bytes"], 1, g, 5.0) == 1.0


def test_overlap_hides_only_what_is_ready(sop):
    # one layer: its gradients are final at the end of the backward, so nothing but the head overlaps
    f, s = sop.part_flops("lstm", 1024, 1, 64, 100), sop.part_bytes("lstm", 1024, 1)
    no = sop.efficiency(20.0, sum(s), 64, 25, 5.0)
    assert sop.efficiency_overlap(20.0, f, s, 64, 25, 5.0) == pytest.approx(no, abs=0.01)
    # three layers: the upper two layers' allreduce runs during the lower layers' backward
    f, s = sop.part_flops("lstm", 4096, 3, 64, 100), sop.part_bytes("lstm", 4096, 3)
    assert sop.efficiency_overlap(1000.0, f, s, 64, 25, 5.0) > sop.efficiency(1000.0, sum(s), 64, 25, 5.0) + 0.1


def test_main_prints_the_tables(sop, capsys):
    rows = sop.main([])
    out = capsys.readouterr().out
    assert out.count("| configuration |") == 4
    line = [ln for ln in out.splitlines() if ln.startswith("| lstm 1x1024 B32 T100 cpu | 4,535,361 |")]
    assert len(line) == 1 and "measured" in line[0]
    for row in re.findall(r"^\| lstm 2x512 B64 T100 cpu \|(.*)$", out, re.M)[2:]:    # both efficiency tables
        assert len(row.split("|")) == 10
    assert len(rows) == 18 and sum(r["how"] == "estimated" for r in rows) == 6
    sop.main(["--csv", "--alpha-us", "0", "--ranks", "4", "--gbits", "1"])
    out = capsys.readouterr().out
    assert "| " not in out and "configuration,4 @1" in out
