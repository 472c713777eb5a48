"""Prefill and decode on different chips (issue 16): the prefill pool runs with its own chip's figures."""
import json

import pytest
from typer.testing import CliRunner

from stockpile.catalog import get_chip, get_model
from stockpile.cli import app
from stockpile.errors import InputError
from stockpile.search.serving import search


def _disagg(prefill_chip, keys=("ttft_s", "tpot_s", "fits", "requests_per_s")):
    """8 prefill + 8 decode TP1 instances of Qwen3-32B at concurrency 64, decode on H20."""
    import numpy as np

    from stockpile.perf.calibration import load_calibration
    from stockpile.perf.inference import Configs, chip_dtype_tables, disagg_core, engine_limits
    from stockpile.perf.operators import ChipConsts, ModelConsts
    m, h20 = get_model("Qwen/Qwen3-32B"), get_chip("h20-96gb")
    cal = load_calibration()
    one = {f: np.array([1.0]) for f in ("attn_tp", "attn_dp", "pp", "moe_ep", "moe_tp")}
    peak, kind = chip_dtype_tables(h20, np.array(["fp8"]))
    max_seqs, chunk, mem_util = engine_limits("vllm", h20, Configs())
    pre = None
    if prefill_chip is not None:
        pc = get_chip(prefill_chip)
        pre = (ChipConsts.of(pc), cal.params(pc.family, "vllm"), *chip_dtype_tables(pc, np.array(["fp8"])))
    out = disagg_core(ModelConsts.of(m), ChipConsts.of(h20), cal.params(h20.family, "vllm"), pre=one, dec=one,
                      pre_workers=np.array([8.0]), dec_workers=np.array([8.0]), weight_dtype=np.array(["fp8"]),
                      kv_dtype=np.array(["fp8"]), gemm_peak=peak, kind=kind, isl=4000.0, osl=500.0,
                      concurrency=np.array([64.0]), rate=np.nan, num_requests=np.nan, poisson=1.0, spec_draft=0.0,
                      spec_accept=1.0, prefix_hit=0.0, max_seqs=max_seqs, chunk=chunk, mem_util=mem_util, sync=0.0,
                      pre_chip=pre)
    return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in out.items() if k in keys}


def test_h800_prefill_with_h20_decode_cuts_ttft_against_h20_alone():
    alone, mixed = _disagg(None), _disagg("h800-sxm-80gb")
    assert alone["fits"] and mixed["fits"]
    # H800 prefills the same prompts far faster (dense FP8 1,979 vs 296 TFLOPS): TTFT falls; TPOT is the H20
    # decode pool's either way
    assert mixed["ttft_s"] < 0.6 * alone["ttft_s"]
    assert abs(mixed["tpot_s"] - alone["tpot_s"]) <= 0.1 * alone["tpot_s"]
    # and the search offers such pairs, saying which chip each pool runs on
    m, h20, h800 = get_model("Qwen/Qwen3-32B"), get_chip("h20-96gb"), get_chip("h800-sxm-80gb")
    res = search(m, h20, gpus=16, isl=4000, osl=500, top=20, prefill_chip=h800)
    pairs = [c for c in res.candidates if c.mode == "disaggregated"]
    assert pairs and all(c.prefill["chip"] == "h800-sxm-80gb" and "on h20-96gb" in c.layout_text for c in pairs)


def test_a_prefill_chip_that_cannot_hold_the_model_gets_no_candidate():
    # Qwen3-32B in FP8 is ~33 GB of weights: a TP1 prefill instance on a 24 GB L4 does not fit
    assert not _disagg("l4-24gb")["fits"] and _disagg("h800-sxm-80gb")["fits"]
    m = get_model("meta-llama/Llama-3.1-70B-Instruct")
    res = search(m, get_chip("h20-96gb"), gpus=8, isl=2000, osl=200, top=50, prefill_chip=get_chip("l4-24gb"))
    for c in res.candidates:
        if c.mode == "disaggregated":
            # 70B in bf16/fp8 needs >= 70 GB: an L4 prefill instance needs TP4 or more
            assert c.prefill["chip"] == "l4-24gb" and c.prefill["attn_tp"] * c.prefill["attn_dp"] >= 4


def test_cli_mixed_search_and_its_errors():
    args = ["search", "--model", "Qwen/Qwen3-32B", "--chip", "h20-96gb", "--gpus", "16", "--isl", "4000",
            "--osl", "500", "--tpot-ms", "50"]
    r = CliRunner().invoke(app, [*args, "--prefill-chip", "h800-sxm-80gb", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["best"]["prefill"]["chip"] == "h800-sxm-80gb"
    r = CliRunner().invoke(app, [*args, "--prefill-chip", "h800x", "--json"])
    assert r.exit_code == 2 and "h800-sxm-80gb" in r.output
    r = CliRunner().invoke(app, [*args, "--prefill-chip", "h800-sxm-80gb", "--no-disagg"])
    assert r.exit_code == 2 and "prefill_chip" in r.output


def test_cost_objective_prices_each_pool_at_its_own_chip_and_can_pick_a_lower_throughput_split():
    """H800 prefill at 2.00 USD/h (rental) and H20 decode at ~0.35 USD/h (TCO): per token, more of the cheap decode
    chip can beat the split with the most tokens/s per GPU."""
    from stockpile.catalog.prices import gpu_hour_cost
    m, h20, h800 = get_model("Qwen/Qwen3-32B"), get_chip("h20-96gb"), get_chip("h800-sxm-80gb")
    kw = dict(gpus=16, isl=4000, osl=500, top=5, prefill_chip=h800)
    cost = search(m, h20, objective="cost", **kw)
    thr = search(m, h20, **kw)
    best = cost.candidates[0]
    usd = [c.usd_per_million_output_tokens for c in cost.candidates]
    assert usd == sorted(usd)
    # the hand arithmetic for the winner: each pool's GPUs at its chip's price over the output tokens per hour
    pre = best.prefill or {}
    pre_gpus = pre.get("instances", 0) * pre.get("attn_tp", 1) * pre.get("attn_dp", 1) * pre.get("pp", 1)
    usd_h = pre_gpus * gpu_hour_cost(h800).usd_per_gpu_hour + (16 - pre_gpus) * gpu_hour_cost(h20).usd_per_gpu_hour
    assert best.usd_per_million_output_tokens == pytest.approx(
        usd_h / (best.output_tokens_per_s_per_gpu * 16 * 3600) * 1e6, rel=2e-3)
    assert best.usd_per_million_output_tokens <= min(
        c.usd_per_million_output_tokens or 1e9 for c in search(m, h20, objective="cost", **kw).candidates)
    assert thr.candidates[0].output_tokens_per_s_per_gpu >= best.output_tokens_per_s_per_gpu


def test_cost_objective_needs_prices():
    m = get_model("Qwen/Qwen3-32B")
    with pytest.raises(InputError, match="no price source for a40-48gb"):
        search(m, get_chip("a40-48gb"), gpus=8, isl=1000, osl=100, objective="cost")


def test_a_pair_whose_kv_transfer_outruns_the_link_is_bound_by_it_and_says_so():
    """H800 prefill on a 1 Gb/s NIC: every request's KV cache (Qwen3-32B FP8 KV ~128 KB/token x 4,000 prompt tokens,
    ~0.5 GB) must cross it, so the pair serves at most ~0.1 GB/s x 8 GPUs / 0.5 GB ~ 1.6 requests/s."""
    from stockpile.catalog.chips import Figure, extra_chips
    slow = get_chip("h800-sxm-80gb").model_copy(update={
        "id": "h800-slow-nic", "scaleout_gbps": Figure(value=1.0, source="test: a 1 Gb/s NIC")})
    with extra_chips([slow]):
        fast, bound = _disagg("h800-sxm-80gb"), _disagg("h800-slow-nic", keys=("requests_per_s", "kv_link_share"))
    assert bound["kv_link_share"] >= 0.999
    assert bound["requests_per_s"] < 0.5 * fast["requests_per_s"]


def test_pairs_of_chips_are_compared_with_single_chips():
    r = CliRunner().invoke(app, ["search", "--model", "Qwen/Qwen3-32B", "--chips", "h800-sxm-80gb,h20-96gb",
                                 "--gpus", "16", "--isl", "4000", "--osl", "500", "--tpot-ms", "50", "--ttft-ms",
                                 "3000", "--pairs"])
    assert r.exit_code == 0, r.output
    assert "h800-sxm-80gb -> h20-96gb (P/D)" in r.output and "h20-96gb -> h800-sxm-80gb (P/D)" in r.output
    assert "no price source" not in r.output
    r = CliRunner().invoke(app, ["search", "--model", "Qwen/Qwen3-32B", "--chips", "h800-sxm-80gb", "--gpus", "8",
                                 "--isl", "100", "--osl", "100", "--pairs"])
    assert r.exit_code == 2 and "pairs" in r.output


def test_export_puts_each_pool_of_a_mixed_pair_on_its_own_chips_nodes():
    import yaml
    r = CliRunner().invoke(app, ["export", "--target", "k8s", "--model", "Qwen/Qwen3-32B", "--chip", "h20-96gb",
                                 "--prefill-chip", "h800-sxm-80gb", "--gpus", "16", "--isl", "4000", "--osl", "500",
                                 "--tpot-ms", "50", "--engine", "sglang"])
    assert r.exit_code == 0, r.output
    docs = [d for d in yaml.safe_load_all(r.stdout) if d and d.get("kind") in ("Deployment", "LeaderWorkerSet")]
    by_role = {d["metadata"]["labels"]["app.kubernetes.io/component"]: yaml.safe_dump(d) for d in docs}
    assert "NVIDIA-H800" in by_role["prefill"] and "NVIDIA-H20" not in by_role["prefill"]
    assert "NVIDIA-H20" in by_role["decode"] and "NVIDIA-H800" not in by_role["decode"]


def test_prefill_and_decode_chip_lists_search_every_pair_and_name_both_chips() -> None:
    import json

    from typer.testing import CliRunner

    from stockpile.cli import app
    r = CliRunner().invoke(app, ["search", "--model", "Qwen/Qwen3-32B", "--prefill-chips", "h800-sxm-80gb",
                                 "--decode-chips", "h20-96gb,h800-sxm-80gb", "--gpus", "16", "--isl", "4000",
                                 "--osl", "500", "--tpot-ms", "50", "--json"])
    assert r.exit_code == 0, r.output
    runs = json.loads(r.stdout)["comparison"]
    assert [x["chip"] for x in runs] == ["h20-96gb", "h800-sxm-80gb"]
    for run in runs:
        for c in run["candidates"]:
            if c["mode"] == "disaggregated":
                assert c["decode_chip"] == run["chip"] and c["prefill_chip"] == "h800-sxm-80gb"
            else:
                assert c["prefill_chip"] is None and c["decode_chip"] is None


def _cheapest(model, chip, *, isl, osl, slo, prefill=None):
    from stockpile.search.serving import Slo
    r = search(model, chip, gpus=16, isl=isl, osl=osl, slo=Slo(**slo), objective="cost", top=1,
               prefill_chip=prefill, aggregated=prefill is None)
    return r, (r.best.usd_per_million_output_tokens if r.best is not None else None)


def test_a_decode_chip_with_more_bandwidth_per_dollar_wins_tpot_bound_and_loses_ttft_bound():
    """H20 beside H800: decode is memory-bound, so its cost per token goes as GPU-hour price / bandwidth. H800
    rents at 2.00 USD/h for 3.35 TB/s (0.60 USD/h per TB/s); H20 costs 12,500 USD over 5 years plus power
    (~0.33 USD/h, tests/catalog/test_prices.py) for 4.0 TB/s (~0.08 USD/h per TB/s): 7x more bandwidth per
    dollar. With long outputs and a TPOT target, H800 prefill + H20 decode is cheaper per token than H800 alone
    (and H20 alone misses the TTFT target: a third of H800's compute for the prompts). With long prompts, short
    answers and a tight TTFT target, the decode chip's bandwidth buys nothing and the pair adds the KV hand-off
    and splits the GPUs: H800 alone meets the target and the pair does not."""
    from stockpile.catalog.prices import gpu_hour_cost
    m, h800, h20 = get_model("Qwen/Qwen3-32B"), get_chip("h800-sxm-80gb"), get_chip("h20-96gb")
    c800, c20 = gpu_hour_cost(h800), gpu_hour_cost(h20)
    assert c800 is not None and c20 is not None
    assert (h20.mem_bw / c20.usd_per_gpu_hour) > 5 * (h800.mem_bw / c800.usd_per_gpu_hour)
    tpot_bound = dict(isl=1000, osl=1000, slo={"ttft_ms": 4000, "tpot_ms": 25})
    _, alone = _cheapest(m, h800, **tpot_bound)
    _, pair = _cheapest(m, h20, prefill=h800, **tpot_bound)
    h20_alone, _ = _cheapest(m, h20, **tpot_bound)
    assert alone is not None and pair is not None and pair < alone
    assert h20_alone.best is None or h20_alone.best.mode == "disaggregated"
    ttft_bound = dict(isl=8000, osl=50, slo={"ttft_ms": 600})
    _, alone = _cheapest(m, h800, **ttft_bound)
    res, pair = _cheapest(m, h20, prefill=h800, **ttft_bound)
    assert alone is not None and pair is None and "no configuration meets" in res.message


def test_a_pair_whose_kv_hand_off_breaks_the_slo_is_rejected_with_the_reason():
    """The same H800 with a 0.5 Gb/s NIC: a 4,000-token prompt's FP8 KV cache (~0.5 GB) takes seconds to cross, so
    no configuration meets TTFT 3 s; with a free link hundreds would. The pair is rejected and says why, and the
    planner does not offer it (its note carries the reason). (At 1 Gb/s, three TP8 prefill instances, whose eight
    NICs share each hand-off, meet it on 32 GPUs at 20 tokens/s per GPU since 2026-12-06.)"""
    from stockpile.catalog.chips import Figure, extra_chips
    from stockpile.fleet.rates import default_pair_rate
    from stockpile.search.serving import Slo
    slow = get_chip("h800-sxm-80gb").model_copy(update={
        "id": "h800-slow-nic", "scaleout_gbps": Figure(value=0.5, source="test: a 0.5 Gb/s NIC")})
    m, h20 = get_model("Qwen/Qwen3-32B"), get_chip("h20-96gb")
    with extra_chips([slow]):
        r = search(m, h20, gpus=16, isl=4000, osl=500, slo=Slo(ttft_ms=3000, tpot_ms=50), prefill_chip=slow,
                   aggregated=False)
        assert r.best is None
        assert r.message.startswith("rejected:") and "KV hand-off" in r.message and "(0.5 Gb/s" in r.message
        found = default_pair_rate("Qwen/Qwen3-32B", "h800-slow-nic", "h20-96gb", 4000.0, 500.0, 3000.0, 50.0)
        assert found is not None and found.tokens_per_s_per_gpu == 0 and "KV hand-off" in found.note
    # the real H800 (400 Gb/s) is not rejected for its link
    r = search(m, h20, gpus=16, isl=4000, osl=500, slo=Slo(ttft_ms=3000, tpot_ms=50),
               prefill_chip=get_chip("h800-sxm-80gb"), aggregated=False)
    assert r.best is not None
