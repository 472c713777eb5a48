"""Policy events (issue 11): no foresight across policy worlds, composition in date order, rules by chip figures,
no_use ending rental. Expected values are worked out by hand."""
from __future__ import annotations

import numpy as np
import pytest

from stockpile.fleet.planner import plan_scenario
from stockpile.fleet.problem import event_chips, event_masks
from stockpile.fleet.scenario import PolicyEvent


def _orders_before(world, month):
    return sorted((o.chip, o.order_month, o.count) for o in world.procurement if o.order_month < month)


def _ban_scenario(base, announced=None):
    # 1000 h800 at 100 tok/s; demand 50k x 1.1^t reaches 50k x 1.1^11 = 142.7k by 2025-12: 427 more chips.
    # h20 (100 tok/s) can be bought with a one-month lead; a ban from 2025-07 happens with probability 0.4.
    base["procurement"] = [{"chip": "h20-96gb", "price_usd": 10_000, "lead_time_months": 1, "max_per_month": 5000}]
    ev = {"chip": "h20-96gb", "date": "2025-07", "effect": "no_purchase", "probability": 0.4}
    if announced:
        ev["announced"] = announced
    base["policy_events"] = [ev]
    return base


def test_decisions_before_an_event_is_known_are_the_same_in_every_world(base, rates):
    res = plan_scenario(_ban_scenario(base), samples=500, rates=rates)
    worlds = {tuple(w.events): w for w in res.runway.worlds}
    assert len(worlds) == 2 and sum(w.probability for w in worlds.values()) == pytest.approx(1.0)
    ban, no_ban = worlds[("no_purchase h20-96gb 2025-07",)], worlds[()]
    assert ban.probability == pytest.approx(0.4)
    # orders placed before 2025-07 cannot depend on the ban, which is only known then
    assert _orders_before(ban, "2025-07") == _orders_before(no_ban, "2025-07")
    # hedging: a 40 % risk of never getting the 427 chips is worth their depreciation, so enough arrive before
    # the ban in both worlds, and both meet demand through the horizon
    delivered = sum(o.expected_delivered for o in ban.procurement)
    assert delivered >= 427 - 1
    assert ban.runway is None and no_ban.runway is None


def test_an_announced_event_splits_the_plan_from_its_announcement(base, rates):
    # Announced in 2025-04 for 2025-07: the worlds may differ from 2025-04 on, never before.
    res = plan_scenario(_ban_scenario(base, announced="2025-04"), samples=200, rates=rates)
    ban, no_ban = (next(w for w in res.runway.worlds if bool(w.events) == b) for b in (True, False))
    assert _orders_before(ban, "2025-04") == _orders_before(no_ban, "2025-04")
    # the ban world has everything it needs by the ban; the other world buys as demand grows
    assert sum(o.count for o in ban.procurement if o.order_month >= "2025-07") == 0
    assert ban.runway is None and no_ban.runway is None


def test_h20_history_composes_in_date_order():
    # No purchase from 2025-04 (index 3), allowed again from 2025-08 (index 7): deliverable 0-2 and 7-11.
    evs = [PolicyEvent(chip="h20-96gb", date="2025-08", effect="allow_purchase"),
           PolicyEvent(chip="h20-96gb", date="2025-04", effect="no_purchase")]
    usable, deliver = event_masks(["h20-96gb"], 12, evs, [7, 3])
    assert deliver[0].tolist() == [True] * 3 + [False] * 4 + [True] * 5
    assert usable.all()
    # a chip first allowed by an event that does not happen is never delivered
    only = [PolicyEvent(chip="h20-96gb", date="2025-08", effect="allow_purchase", probability=0.5)]
    _, never = event_masks(["h20-96gb"], 12, only, [None])
    assert not never.any()


def test_rules_select_chips_by_tpp():
    # TPP = dense TOPS x bits: H800 989.5 x 16 = 15,832 (>= 4,800); H20 148 x 16 = 2,368 (below).
    ev = PolicyEvent(rule={"tpp_at_least": 4800}, date="2025-01", effect="no_purchase")
    chips = ["h800-sxm-80gb", "h20-96gb", "a800-sxm-80gb"]
    assert event_chips(ev, chips) == [0, 2]                   # A800: 312 x 16 = 4,992
    lower = PolicyEvent(rule={"tpp_at_least": 2000}, date="2025-01")
    assert event_chips(lower, chips) == [0, 1, 2]


def test_a_rule_event_blocks_purchases_in_the_plan(base, rates):
    base["procurement"] = [{"chip": "h800-sxm-80gb", "price_usd": 30_000, "lead_time_months": 1,
                            "max_per_month": 5000},
                           {"chip": "h20-96gb", "price_usd": 15_000, "lead_time_months": 1, "max_per_month": 5000}]
    base["policy_events"] = [{"rule": {"tpp_at_least": 4800}, "date": "2025-01", "effect": "no_purchase"},
                             {"rule": {"tpp_at_least": 1000}, "date": "2025-09", "effect": "no_purchase"}]
    res = plan_scenario(base, samples=0, rates=rates)
    assert all(o.chip == "h20-96gb" for o in res.procurement)
    assert all(o.arrival_month < "2025-09" for o in res.procurement)


def test_no_use_ends_rental_too(base, rates):
    # h20 rented (no stock); from 2025-04 it may not be used, nor rented: demand beyond the h800 is unmet then.
    base["inference"][0]["monthly_growth"] = 0.0
    base["inference"][0]["tokens_per_day"] *= 3          # 150k tok/s: 1000 h800 + 500 rented h20
    base["costs"] = {"rental": [{"chip": "h20-96gb", "usd_per_gpu_hour": 1.0, "max_gpus": 1000}]}
    base["policy_events"] = [{"chip": "h20-96gb", "date": "2025-04", "effect": "no_use"}]
    res = plan_scenario(base, samples=0, rates=rates)
    rented = {a.month: sum(a.rented.values()) for a in res.allocation if a.chip == "h20-96gb"}
    assert rented["2025-03"] == 500 and rented.get("2025-04", 0) == 0
    assert res.runway.deterministic == "2025-04"
    u = next(x for x in res.unmet if x.month == "2025-04")
    assert u.output_tokens_per_s == pytest.approx(50_000, rel=1e-6)


def test_worlds_probabilities_follow_the_events(base, rates):
    base["policy_events"] = [{"chip": "h20-96gb", "date": "2025-05", "effect": "no_purchase", "probability": 0.3},
                             {"chip": "h800-sxm-80gb", "date": "2025-08", "effect": "no_use", "probability": 0.2}]
    res = plan_scenario(base, samples=2000, rates=rates)
    probs = sorted(w.probability for w in res.runway.worlds)
    assert np.allclose(probs, sorted([0.7 * 0.8, 0.3 * 0.8, 0.7 * 0.2, 0.3 * 0.2]))
    # the h800 ban leaves no chip: those worlds run out in 2025-08; the others at 2025-09 (50k x 1.1^8 > 100k)
    for w in res.runway.worlds:
        assert w.runway == ("2025-08" if any("no_use" in e for e in w.events) else "2025-09")
    assert sum(w.samples for w in res.runway.worlds) == 2000


def test_a_density_rule_selects_by_density_and_names_chips_it_cannot_judge(base, rates):
    # PD = TPP / die area: H800 15,830 / 814 mm2 = 19.4 and H20 2,368 / 814 = 2.9 against 5.92; the 910B's die
    # area is not sourced, so the rule cannot select it and the plan says so.
    ev = PolicyEvent(rule={"performance_density_at_least": 5.92}, date="2025-01")
    assert event_chips(ev, ["h800-sxm-80gb", "h20-96gb", "ascend-910b-64gb"]) == [0]
    base["stock"].append({"chip": "ascend-910b-64gb", "count": 10, "age_months": 0})
    base["policy_events"] = [{"rule": {"performance_density_at_least": 5.92}, "date": "2025-03",
                              "effect": "no_purchase"}]
    res = plan_scenario(base, samples=0, rates=rates)
    note = next(n for n in res.notes if n.startswith("policy_events[0]"))
    assert "ascend-910b-64gb" in note and "h800-sxm-80gb" not in note
