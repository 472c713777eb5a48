"""Goodput: the Llama 3 interruption rate, Young/Daly checkpointing, and spare-node job sizes."""
import math

import pytest

from stockpile.errors import InputError
from stockpile.perf.goodput import (
    INTERRUPTIONS_PER_GPU_DAY,
    goodput_fraction,
    job_goodput,
    largest_job_nodes,
    optimal_interval_s,
)


def test_default_rate_reproduces_llama3():
    """419 unexpected interruptions in 54 days on 16,384 H100 (arXiv:2407.21783): one every ~3 hours."""
    g = job_goodput(16384, 405e9)
    assert g.interruptions_per_day * 54 == pytest.approx(419)
    assert g.mtbf_s / 3600 == pytest.approx(3.09, abs=0.05)
    assert 0.9 <= g.goodput < 0.97           # Meta reports > 90 % effective training time
    assert INTERRUPTIONS_PER_GPU_DAY == pytest.approx(4.74e-4, rel=0.01)


def test_young_daly_interval():
    # delta << M: Young's sqrt(2 delta M)
    assert optimal_interval_s(10.0, 1e6) == pytest.approx(math.sqrt(2 * 10 * 1e6), rel=0.01)
    # the optimum beats intervals either side of it
    d, m, r = 60.0, 20000.0, 300.0
    tau = optimal_interval_s(d, m)
    best = goodput_fraction(d, tau, r, m)
    assert best >= goodput_fraction(d, tau / 2, r, m) and best >= goodput_fraction(d, tau * 2, r, m)


def test_goodput_falls_with_job_size():
    vals = [job_goodput(g, 70e9).goodput for g in (64, 1024, 16384, 131072)]
    assert all(a > b for a, b in zip(vals, vals[1:]))


def test_spares_raise_the_largest_job():
    sizes = [largest_job_nodes(4096, s) for s in (0, 4, 16, 64)]
    assert sizes[0] == 0 or sizes[0] < sizes[1]
    assert all(a <= b for a, b in zip(sizes, sizes[1:]))
    assert sizes[-1] <= 4096 - 64
    with pytest.raises(InputError):
        largest_job_nodes(0, 1)
