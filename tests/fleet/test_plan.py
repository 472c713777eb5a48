"""Known answers of the fleet MILP with fake rates: runway month, policy shifts, conservation, partial plans."""
from __future__ import annotations

import math

import pytest
from fleet_helpers import HOURS, output_tokens_per_day

from stockpile.fleet.planner import plan_scenario


def months_of(res, chip):
    return {a.month: a for a in res.allocation if a.chip == chip}


def test_single_workload_runs_out_in_the_computable_month(base, rates):
    # 1000 chips x 100 tok/s = 100k tok/s; demand 50k * 1.1^t exceeds it once t > ln 2 / ln 1.1 = 7.27 -> t = 8.
    res = plan_scenario(base, samples=0, rates=rates)
    t = math.ceil(math.log(2) / math.log(1.1))
    assert res.runway.deterministic == f"2025-{t + 1:02d}"
    first = min(res.unmet, key=lambda u: u.month)
    assert first.month == res.runway.deterministic
    expected = 50_000 * 1.1 ** t - 100_000
    assert first.output_tokens_per_s == pytest.approx(expected, rel=1e-4)
    assert res.runway.by_workload["chat"] == res.runway.deterministic


def test_no_use_event_shifts_work_to_the_other_chip(base, rates):
    # h20 draws less power than h800 at the same fake rate, so it serves first; from 2025-04 it may not be used.
    base["stock"].append({"chip": "h20-96gb", "count": 1000, "age_months": 0})
    base["inference"][0]["monthly_growth"] = 0.0
    base["policy_events"] = [{"chip": "h20-96gb", "date": "2025-04", "effect": "no_use"}]
    res = plan_scenario(base, samples=0, rates=rates)
    h20, h800 = months_of(res, "h20-96gb"), months_of(res, "h800-sxm-80gb")
    assert h20["2025-03"].inference.get("chat", 0) == 500 and h800["2025-03"].inference.get("chat", 0) == 0
    assert h20["2025-04"].usable == 0 and h20["2025-04"].inference.get("chat", 0) == 0
    assert h800["2025-04"].inference["chat"] == 500
    assert res.runway.deterministic is None


def test_no_purchase_event_shifts_procurement_to_another_chip(base, rates):
    # Demand outgrows the stock; h20 is cheaper to buy but its deliveries stop from 2025-05 on.
    base["procurement"] = [
        {"chip": "h20-96gb", "price_usd": 10_000, "lead_time_months": 1, "max_per_month": 5000},
        {"chip": "ascend-910b-64gb", "price_usd": 12_000, "lead_time_months": 1, "max_per_month": 5000}]
    base["policy_events"] = [{"chip": "h20-96gb", "date": "2025-05", "effect": "no_purchase"}]
    res = plan_scenario(base, samples=0, rates=rates)
    arrivals = {(o.chip, o.arrival_month) for o in res.procurement}
    assert all(m < "2025-05" for c, m in arrivals if c == "h20-96gb")
    assert any(c == "ascend-910b-64gb" for c, _ in arrivals)
    assert res.runway.deterministic is None          # buying keeps demand met
    assert res.cost_breakdown_usd["procurement_capex"] > 0


def test_allocations_never_exceed_the_stock(base, rates):
    base["stock"] += [{"chip": "h20-96gb", "count": 700, "age_months": 30},
                      {"chip": "a800-sxm-80gb", "count": 333, "age_months": 50}]
    base["attrition"] = {"curve": [{"age_years": 0, "annual_rate": 0.05}, {"age_years": 4, "annual_rate": 0.2}]}
    base["inference"].append({"name": "api", "model": "Qwen/Qwen3-8B", "tokens_per_day": output_tokens_per_day(60_000),
                              "isl": 500, "osl": 500, "monthly_growth": 0.05})
    base["training"] = {"generations": [{"name": "g", "params_b": 7, "tokens": 2e12, "deadline": "2025-06",
                                         "min_chips": 300, "max_chips": 900}]}
    res = plan_scenario(base, samples=0, rates=rates)
    for a in res.allocation:
        busy = a.training + sum(a.inference.values())
        assert busy + a.idle == a.usable
        assert a.usable <= a.stock
    # attrition: the stock only shrinks without procurement
    h20 = [a.stock for a in res.allocation if a.chip == "h20-96gb"]
    assert h20 == sorted(h20, reverse=True) and h20[-1] < 700


def test_training_duration_follows_gpu_hours(base, rates):
    # 1000 tok/s per h800 and goodput 0.9: tokens sized for exactly 2 months on 500 chips.
    tokens = 1000.0 * 3600 * HOURS * 500 * 2 * 0.9
    base["inference"][0]["tokens_per_day"] = output_tokens_per_day(10_000)
    base["training"] = {"generations": [
        {"name": "a", "params_b": 7, "tokens": tokens, "deadline": "2025-04", "min_chips": 500, "max_chips": 500},
        {"name": "b", "params_b": 7, "tokens": tokens, "deadline": "2025-12", "min_chips": 500, "max_chips": 500,
         "after": "a"}]}
    res = plan_scenario(base, samples=0, rates=rates)
    a, b = res.generations
    assert a.trained and b.trained and a.meets_deadline and b.meets_deadline
    assert a.months == pytest.approx(2.0, rel=1e-6)
    assert a.gpu_hours == pytest.approx(500 * 2 * HOURS, rel=1e-6)
    assert b.start >= "2025-03" and b.start >= a.end     # b follows a
    assert res.generations_trained == 2


def test_impossible_programme_gives_best_partial_plan_and_unmet(base, rates):
    base["inference"][0]["tokens_per_day"] = output_tokens_per_day(500_000)     # 5x the stock
    base["training"] = {"generations": [
        {"name": "too-big", "params_b": 70, "tokens": 1e12, "deadline": "2025-06", "min_chips": 5000,
         "max_chips": 8000}]}
    res = plan_scenario(base, samples=0, rates=rates)
    assert res.status == "optimal"
    assert res.runway.deterministic == "2025-01"
    assert res.unmet and res.unmet[0].fraction == pytest.approx(0.8, rel=1e-3)
    assert res.generations[0].trained is False and res.generations_trained == 0
    served = sum(a.inference.get("chat", 0) for a in res.allocation if a.month == "2025-01")
    assert served == 1000                                # every chip works on the partial plan


def test_power_limit_binds(base, rates):
    base["clusters"] = [{"id": "default", "power_mw": 0.5, "pue": 1.25}]
    base["inference"][0]["monthly_growth"] = 0.0
    res = plan_scenario(base, samples=0, rates=rates)
    # h800 all-in 700 W x 1.82 x PUE 1.25 = 1.59 kW per chip -> 313 chips under 0.5 MW
    busy = [a.training + sum(a.inference.values()) for a in res.allocation if a.month == "2025-01"]
    assert busy[0] == pytest.approx(0.5e3 / (0.7 * 1.82 * 1.25), abs=1)
    assert "power" in res.binding_summary and res.unmet


def test_rental_fills_gap(base, rates):
    base["costs"] = {"rental": [{"chip": "a800-sxm-80gb", "usd_per_gpu_hour": 1.0, "max_gpus": 10_000}]}
    res = plan_scenario(base, samples=0, rates=rates)
    assert res.runway.deterministic is None
    assert res.cost_breakdown_usd["rental"] > 0
    assert any(a.rented for a in res.allocation if a.chip == "a800-sxm-80gb")
