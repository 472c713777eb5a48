"""fleet/background.py: the plan's Monte Carlo in a forked process gives the same answer as inline."""
from __future__ import annotations

import os
import threading

import pytest

from stockpile.fleet import background
from stockpile.fleet.background import in_background

FORKS = background._can_fork()


@pytest.mark.skipif(not FORKS, reason="needs fork and two CPUs")
def test_the_value_comes_back_from_a_child_process():
    parent = os.getpid()
    job = in_background(lambda: (os.getpid(), sum(range(1000))))
    pid, total = job()
    assert pid != parent and total == 499_500


@pytest.mark.skipif(not FORKS, reason="needs fork and two CPUs")
def test_an_exception_in_the_child_is_raised_here():
    def boom() -> int:
        raise ValueError("bad scenario field")
    job = in_background(boom)
    with pytest.raises(ValueError, match="bad scenario field"):
        job()


@pytest.mark.skipif(not FORKS, reason="needs fork and two CPUs")
def test_a_child_that_dies_without_answering_is_redone_inline():
    parent = os.getpid()

    def work() -> int:
        if os.getpid() != parent:
            os._exit(3)                      # killed before it could answer
        return 42
    assert in_background(work)() == 42


def test_no_fork_from_a_worker_thread_or_when_disabled():
    parent = os.getpid()
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(in_background(os.getpid)()))
    t.start()
    t.join()
    assert got == [parent]
    assert in_background(os.getpid, enabled=False)() == parent


def test_the_plan_is_the_same_forked_or_inline(monkeypatch):
    from stockpile.fleet.planner import plan_scenario
    from tests.fleet.fleet_helpers import BASE, fake_rates
    s = dict(BASE)
    s["uncertainty"] = dict(BASE["uncertainty"], demand_growth_sd=0.03, demand_level_sd=0.1, attrition_sigma=0.3)
    a = plan_scenario(s, samples=500, rates=fake_rates())
    monkeypatch.setattr(background, "_can_fork", lambda: False)
    b = plan_scenario(s, samples=500, rates=fake_rates())
    assert a.runway.model_dump(exclude={"seconds"}) == b.runway.model_dump(exclude={"seconds"})
    assert a.generations_trainable == b.generations_trainable
