"""Issue 16, item 4: a workload served by a chip pair (prefill on one chip type, decode on another) in the plan.

The hand-computed case: 100 H800 and 1,000 H20 in one cluster; one workload whose single-chip rates are the
user's (H800 400, H20 100 output tokens/s per GPU) and a pair H800 prefill + H20 decode at 300 tokens/s per GPU
with a quarter of its GPUs prefilling. Capacity without the pair: 100 x 400 + 1,000 x 100 = 140,000 tokens/s.
A pair GPU moves 0.25 H800 and 0.75 H20 out of single serving: 300 - 0.25 x 400 - 0.75 x 100 = +125 tokens/s
per pair GPU, up to 100 / 0.25 = 400 pair GPUs (all H800): at most 140,000 + 400 x 125 = 190,000 tokens/s.
Demand of 180,000 tokens/s at a flat day is met only with the pair (it needs 40,000 / 125 = 320 pair GPUs or
more); without the pair 40,000 tokens/s stay unmet.
"""
from __future__ import annotations

import copy

import pytest

from stockpile.errors import StockpileError
from stockpile.fleet.planner import plan_scenario
from stockpile.fleet.rates import default_pair_rate
from tests.fleet.fleet_helpers import BASE, fake_rates, output_tokens_per_day

DEMAND = 180_000.0
PAIR = {"prefill": "h800-sxm-80gb", "decode": "h20-96gb", "throughput_per_gpu": 300.0, "prefill_share": 0.25}


def _scenario(pairs: list | None = None, **wl) -> dict:
    s = copy.deepcopy(BASE)
    s["horizon_months"] = 3
    s["stock"] = [{"chip": "h800-sxm-80gb", "count": 100, "age_months": 0},
                  {"chip": "h20-96gb", "count": 1000, "age_months": 0}]
    s["inference"] = [{"name": "chat", "model": "Qwen/Qwen3-32B", "isl": 500, "osl": 500,
                       "tokens_per_day": output_tokens_per_day(DEMAND), "daily_profile": [1.0] * 24,
                       "throughput_per_gpu": {"h800-sxm-80gb": 400.0, "h20-96gb": 100.0},
                       "chip_pairs": pairs or [], **wl}]
    return s


def _plan(s: dict, samples: int = 0):
    return plan_scenario(s, samples=samples, rates=fake_rates(), stock_only=False)


def test_without_the_pair_the_hand_computed_shortfall_stays_unmet():
    r = _plan(_scenario())
    assert r.runway.deterministic == "2025-01"
    short = [u.output_tokens_per_s for u in r.unmet if u.month == "2025-01"]
    assert short == [pytest.approx(DEMAND - 140_000.0, rel=1e-4)]
    assert r.chip_pairs == []


def test_the_pair_closes_the_gap_and_the_report_says_why():
    r = _plan(_scenario([PAIR]), samples=200)
    assert r.runway.deterministic is None and not r.unmet
    # the Monte Carlo, with nothing uncertain, agrees with the plan
    assert r.runway.p_meets_demand_through_horizon == 1.0
    (u,) = r.chip_pairs
    assert (u.prefill_chip, u.decode_chip, u.source) == ("h800-sxm-80gb", "h20-96gb", "user")
    # energy picks how far: per output token a pair GPU costs (0.25 e_H800 + 0.75 e_H20) / 300 and a single
    # H800 e_H800 / 400; with the catalog TDPs (700 W, 400 W) e_H20 = 0.571 e_H800, so the pair is cheaper
    # (0.00226 vs 0.00250 e_H800) and takes every H800 (400 pair GPUs: 100 H800 + 300 H20); the remaining
    # 180,000 - 120,000 = 60,000 tokens/s need 600 single H20, and 100 H20 stay idle
    assert u.months_used == 3 and u.peak_gpus == 400
    assert "per h800-sxm-80gb" in u.reason and "3.0x" in u.reason      # 300 / 0.25 = 1,200 vs 400 alone
    jan = {a.chip: a for a in r.allocation if a.month == "2025-01"}
    # chips held: the pair's GPUs count on both chip types, within the stock
    assert jan["h800-sxm-80gb"].inference["chat"] <= 100 and jan["h20-96gb"].inference["chat"] <= 1000
    assert jan["h800-sxm-80gb"].inference["chat"] == 100 and jan["h20-96gb"].idle == 100
    served = jan["h800-sxm-80gb"].output_tokens_per_s + jan["h20-96gb"].output_tokens_per_s
    assert served >= DEMAND * (1 - 1e-3)
    assert "Pair h800-sxm-80gb prefill + h20-96gb decode for chat" in r.summary()


def test_a_pair_whose_chips_sit_in_different_clusters_is_not_offered():
    s = _scenario([PAIR])
    s["stock"][1]["cluster"] = "far"
    r = _plan(s)
    assert r.chip_pairs == [] and any("no cluster holds both chips" in n for n in r.notes)


def test_a_pair_rate_from_the_mixed_search():
    # no numbers given: the mixed serving search (prefill on H800, decode on H20) gives rate and prefill share
    pair = {"prefill": "h800-sxm-80gb", "decode": "h20-96gb"}
    s = _scenario([pair], ttft_ms=2000.0, tpot_ms=50.0)
    r = _plan(s)
    (u,) = r.chip_pairs
    found = default_pair_rate("Qwen/Qwen3-32B", "h800-sxm-80gb", "h20-96gb", 500.0, 500.0, 2000.0, 50.0)
    assert found is not None and u.source == "search"
    assert u.output_tokens_per_s_per_gpu == pytest.approx(found.tokens_per_s_per_gpu, rel=1e-3)
    assert 0 < u.prefill_share < 1 and "prefill" in u.how and "on h20-96gb" in u.how


@pytest.mark.parametrize("pair, field, says", [
    ({"prefill": "h800-sxm-80gbb", "decode": "h20-96gb"}, "chip_pairs", "h800-sxm-80gb"),
    ({"prefill": "h20-96gb", "decode": "h20-96gb"}, "chip_pairs", "two chip types"),
    ({"prefill": "h800-sxm-80gb", "decode": "h20-96gb", "prefill_share": 1.5}, "prefill_share", "less than 1"),
    ({"prefill": "h800-sxm-80gb", "decode": "h20-96gb", "throughput_per_gpu": -3}, "throughput_per_gpu", "greater"),
])
def test_bad_pairs_name_the_field(pair, field, says):
    with pytest.raises(StockpileError) as e:
        _plan(_scenario([pair]))
    msg = str(e.value)
    assert field in msg and says in msg


def test_the_bundled_mixed_pool_example_uses_the_pair_where_it_pays():
    from pathlib import Path

    import stockpile
    from stockpile.report import render_plan_html

    path = Path(stockpile.__file__).parent / "data" / "examples" / "mixed-pool.yaml"
    r = plan_scenario(path, samples=0, stock_only=True)
    used = {u.workload: u for u in r.chip_pairs}
    # Qwen3-32B's long prompts: an H800 in the pair serves more than alone (prefill-bound work on the chip with
    # the compute), so the pair is used; DeepSeek-V3's pair gives less per H800 than H800 alone and is not
    assert used["search"].months_used > 0
    s = used["search"]
    pre_alone = next(x["output_tokens_per_s_per_gpu"] for x in r.rates
                     if x.get("workload") == "search" and x["chip"] == "h800-sxm-80gb")
    assert s.output_tokens_per_s_per_gpu / s.prefill_share > pre_alone
    assert used["chat"].months_used == 0 and "offered, not used" in used["chat"].reason
    page = render_plan_html(r)
    assert 'id="chip-pairs"' in page and "offered, not used" in page
    # the same scenario without pairs: the stock alone lasts no longer
    s2 = __import__("yaml").safe_load(path.read_text())
    for w in s2["inference"]:
        w.pop("chip_pairs")
    r2 = plan_scenario(s2, samples=0, stock_only=True)
    assert r2.chip_pairs == []
    assert (r.runway.stock_only.deterministic or "9999") >= (r2.runway.stock_only.deterministic or "9999")


def test_a_pair_whose_decode_chip_cannot_hold_the_model_is_not_offered_and_says_why():
    # DeepSeek-V3 (671B, FP8: ~671 GB of weights) cannot be decoded on at most 32 x 24 GB L4 (768 GB, less the
    # prefill GPUs and the KV cache): the mixed search finds no configuration, so the plan does not offer the pair
    s = _scenario([{"prefill": "h800-sxm-80gb", "decode": "l4-24gb"}])
    s["stock"].append({"chip": "l4-24gb", "count": 64, "age_months": 0})
    s["inference"][0].update(model="deepseek-ai/DeepSeek-V3", throughput_per_gpu={"h800-sxm-80gb": 400.0})
    r = _plan(s)
    assert r.chip_pairs == []
    note = next(n for n in r.notes if "chip_pairs[0]" in n)
    assert "prefill h800-sxm-80gb, decode l4-24gb" in note and "not offered" in note
