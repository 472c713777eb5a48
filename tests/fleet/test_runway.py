"""Monte Carlo runway: agrees with the plan when nothing is uncertain, orders its quantiles, is reproducible."""
from __future__ import annotations

import numpy as np
import pytest

from stockpile.errors import InputError
from stockpile.fleet.planner import plan_scenario
from stockpile.fleet.runway import check_backend


def test_no_uncertainty_reproduces_the_plan(base, rates):
    res = plan_scenario(base, samples=300, rates=rates)
    assert res.runway.deterministic == "2025-09"
    assert res.runway.p10 == res.runway.p50 == res.runway.p90 == "2025-09"
    assert res.runway.p_meets_demand_through_horizon == 0.0


def test_quantiles_are_ordered_and_reproducible(base, rates):
    base["uncertainty"].update(demand_growth_sd=0.03, demand_level_sd=0.15, attrition_sigma=0.5)
    a = plan_scenario(base, samples=2000, rates=rates)
    b = plan_scenario(base, samples=2000, rates=rates)
    r = a.runway
    assert r.p10 <= r.p50 and (r.p90 is None or r.p50 <= r.p90)
    assert (r.p10, r.p50, r.p90) == (b.runway.p10, b.runway.p50, b.runway.p90)
    assert r.p10 < "2025-09" < (r.p90 or "9999")         # noise spreads the month both ways
    assert all(lo <= mid <= hi for lo, mid, hi in zip(r.coverage_p10, r.coverage_p50, r.coverage_p90))


def test_more_demand_growth_shortens_the_runway(base, rates):
    slow = plan_scenario(base, samples=500, rates=rates)
    base["inference"][0]["monthly_growth"] = 0.2
    fast = plan_scenario(base, samples=500, rates=rates)
    assert fast.runway.p50 < slow.runway.p50


def test_late_delivery_and_policy_risk_lower_confidence(base, rates):
    # Demand reaches 3,710 chips by 2025-12; 400 a month arrive from 2025-03. A ban from 2025-08 (30 % likely)
    # caps the fleet at 3,000 chips, which runs out in 2025-11 even when the re-plan stockpiles before it.
    base["inference"][0]["monthly_growth"] = 0.2
    base["procurement"] = [{"chip": "h20-96gb", "price_usd": 10_000, "lead_time_months": 2, "max_per_month": 400}]
    sure = plan_scenario(base, samples=1000, rates=rates)
    assert sure.runway.deterministic is None and sure.runway.p50 is None
    base["policy_events"] = [{"chip": "h20-96gb", "date": "2025-08", "effect": "no_purchase", "probability": 0.3}]
    base["uncertainty"]["procurement_delay_mean_months"] = 0.0
    risky = plan_scenario(base, samples=1000, rates=rates)
    p = risky.runway.p_meets_demand_through_horizon
    assert 0.6 < p < 0.8                                 # the ban hits ~30 % of futures
    assert risky.runway.p10 == "2025-11"
    assert len(risky.runway.worlds) == 2                 # with and without the ban


def test_generation_on_time_probability(base, rates):
    hours = 8766.0 / 12.0
    base["training"] = {"generations": [{"name": "g", "params_b": 7, "tokens": 1000.0 * 3600 * hours * 500 * 0.9 * 3,
                                         "deadline": "2025-03", "min_chips": 500, "max_chips": 500}]}
    base["inference"][0]["monthly_growth"] = 0.0
    base["uncertainty"]["goodput"] = {"low": 0.8, "high": 1.0}
    res = plan_scenario(base, samples=2000, rates=rates)
    g = res.generations[0]
    assert g.trained and g.meets_deadline and g.end_month_fraction == pytest.approx(3.0)
    # starts in 2025-01, needs 3 months at goodput 0.9, due by the end of 2025-03: on time when goodput >= 0.9
    assert g.p_on_time == pytest.approx(0.5, abs=0.05)


def test_backends(base, rates):
    with pytest.raises(InputError, match="unknown backend"):
        check_backend("spark")
    with pytest.raises(InputError, match="unknown backend 'ray'; choose one of numpy, process"):
        check_backend("ray")               # removed: 10,000 samples take seconds on one machine
    base["uncertainty"].update(demand_growth_sd=0.03)
    a = plan_scenario(base, samples=4100, rates=rates, backend="numpy")
    b = plan_scenario(base, samples=4100, rates=rates, backend="process")
    assert np.allclose(a.runway.coverage_p50, b.runway.coverage_p50) and a.runway.p50 == b.runway.p50
