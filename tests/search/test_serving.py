import json

import pytest
from typer.testing import CliRunner

from stockpile.catalog import get_chip, get_model
from stockpile.cli import app
from stockpile.deploy import load_table, parse
from stockpile.search.export import deploy_spec
from stockpile.search.serving import Slo, pareto_front, search

runner = CliRunner()
QWEN, H200 = "Qwen/Qwen3-32B", "h200-sxm-141gb"


@pytest.fixture(scope="module")
def qwen_h200():
    return search(get_model(QWEN), get_chip(H200), gpus=8, isl=4000, osl=500, slo=Slo(ttft_ms=1000, tpot_ms=50))


def test_best_meets_slo_and_is_best(qwen_h200):
    r = qwen_h200
    assert r.best is not None and r.best.meets_slo
    assert r.best.ttft_ms <= 1000 and r.best.tpot_ms <= 50
    assert all(c.output_tokens_per_s_per_gpu <= r.best.output_tokens_per_s_per_gpu for c in r.candidates)
    assert r.evaluated > 1000 and r.meets_slo <= r.feasible <= r.evaluated


def test_every_candidate_carries_its_band_and_whether_it_holds_at_the_band_edge(qwen_h200):
    r = qwen_h200
    assert r.band_note and "TPOT typically" in r.band_note and "TTFT typically" in r.band_note
    for c in r.candidates:
        assert c.band is not None
        for m in ("ttft_ms", "tpot_ms", "output_tokens_per_s_per_gpu"):
            lo, hi = c.band[m]
            assert lo < getattr(c, m) < hi
        at_edge = c.meets_slo and c.band["ttft_ms"][1] <= 1000 and c.band["tpot_ms"][1] <= 50
        assert c.meets_slo_at_p90 == at_edge
    # the JSON carries both (shared/CONTRACTS.md: fields are added, never renamed)
    res = runner.invoke(app, ["search", "--model", QWEN, "--chip", H200, "--gpus", "8", "--isl", "4000", "--osl",
                              "500", "--tpot-ms", "50", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["band_note"] and doc["candidates"][0]["band"]["tpot_ms"][1] > doc["candidates"][0]["tpot_ms"]
    assert isinstance(doc["candidates"][0]["meets_slo_at_p90"], bool)


def test_confidence_ranks_by_the_band_edge_and_costs_throughput(qwen_h200):
    """--confidence 0.9: a configuration meets the targets only with TTFT and TPOT at the p90 of its regime's
    validated error, so every listed one holds at its band's upper edge, fewer configurations qualify, and the
    best serves no more tokens per GPU than the plain search's best."""
    from stockpile.calibration.bands import quantile_factor
    safe = search(get_model(QWEN), get_chip(H200), gpus=8, isl=4000, osl=500, slo=Slo(ttft_ms=1000, tpot_ms=50),
                  confidence=0.9)
    assert safe.confidence == 0.9 and safe.margins and safe.margins["ttft_ms"] > 1.0
    assert safe.slo == Slo(ttft_ms=1000, tpot_ms=50) and "90 % confidence" in safe.message
    assert safe.best is not None and safe.meets_slo < qwen_h200.meets_slo
    assert safe.best.output_tokens_per_s_per_gpu <= qwen_h200.best.output_tokens_per_s_per_gpu
    for c in safe.candidates:
        assert c.meets_slo_at_p90 and c.ttft_ms * safe.margins["ttft_ms"] <= 1000.5
        assert c.tpot_ms * safe.margins["tpot_ms"] <= 50.05
    # the p10/p90 factors read as a lognormal's: 0.9 returns the upper one, 0.5 their geometric mean
    assert quantile_factor(0.8, 1.5, 0.9) == pytest.approx(1.5)
    assert quantile_factor(0.8, 1.5, 0.5) == pytest.approx((0.8 * 1.5) ** 0.5)


@pytest.mark.parametrize("args", [["--confidence", "1.5"], ["--confidence", "0.2"],
                                  ["--confidence", "0.9", "--request-rate", "5"]])
def test_confidence_out_of_range_or_with_a_rate_search_is_refused(args):
    res = runner.invoke(app, ["search", "--model", QWEN, "--chip", H200, "--gpus", "8", "--isl", "4000", "--osl",
                              "500", "--tpot-ms", "50", *args])
    assert res.exit_code == 2 and "confidence" in res.output and "Traceback" not in res.output


def test_pareto_front_is_non_dominated(qwen_h200):
    front = qwen_h200.pareto
    users = [p["tokens_per_s_per_user"] for p in front]
    gpus = [p["output_tokens_per_s_per_gpu"] for p in front]
    assert users == sorted(users, reverse=True) and gpus == sorted(gpus)


def test_pareto_helper():
    import numpy as np
    idx = pareto_front(np.array([3.0, 2.0, 1.0, 2.5]), np.array([1.0, 2.0, 3.0, 0.5]))
    assert sorted(idx.tolist()) == [0, 1, 2]


def test_more_gpus_never_lowers_best_total_throughput():
    m, c = get_model("meta-llama/Llama-3.1-70B-Instruct"), get_chip("h100-sxm-80gb")
    totals = []
    for g in (4, 8, 16):
        r = search(m, c, gpus=g, isl=2000, osl=500, slo=Slo(tpot_ms=60), disaggregation=False)
        totals.append(r.best.output_tokens_per_s)
    assert totals == sorted(totals)


def test_tighter_slo_never_raises_throughput():
    m, c = get_model(QWEN), get_chip(H200)
    loose = search(m, c, gpus=8, isl=2000, osl=500, slo=Slo(tpot_ms=80)).best
    tight = search(m, c, gpus=8, isl=2000, osl=500, slo=Slo(tpot_ms=20)).best
    assert tight.output_tokens_per_s_per_gpu <= loose.output_tokens_per_s_per_gpu
    assert tight.tpot_ms <= 20


def test_impossible_slo_reports_closest():
    r = search(get_model("Qwen/Qwen3-8B"), get_chip("l4-24gb"), gpus=1, isl=4000, osl=500, slo=Slo(ttft_ms=1, tpot_ms=1))
    assert r.best is None and r.candidates and "no configuration meets" in r.message
    assert not any(c.meets_slo for c in r.candidates)


@pytest.mark.parametrize("rank", [0, 1, 2])
def test_export_flags_parse_with_the_engine_tables(qwen_h200, rank):
    cand = qwen_h200.candidates[rank]
    for engine in ("vllm", "sglang"):
        spec = deploy_spec(cand, model_id=QWEN, chip=get_chip(H200), engine=engine, isl=4000, osl=500)
        from stockpile.deploy import sglang_launches, vllm_launches
        launches = vllm_launches(spec) if engine == "vllm" else sglang_launches(spec)
        for la in launches:
            ns = parse(load_table(la.table), la.argv)        # raises on any flag or value the engine lacks
            assert ns is not None


def test_cli_search_json_and_export_k8s():
    r = runner.invoke(app, ["search", "--model", QWEN, "--chip", H200, "--gpus", "8", "--isl", "4000", "--osl", "500",
                            "--ttft-ms", "1000", "--tpot-ms", "50", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["evaluated"] > 0 and d["candidates"][0]["meets_slo"] and "layout" in d["candidates"][0]
    r = runner.invoke(app, ["export", "--target", "k8s", "--model", QWEN, "--chip", H200, "--gpus", "8", "--isl", "4000",
                            "--osl", "500", "--tpot-ms", "50", "--json"])
    assert r.exit_code == 0, r.output
    kinds = {m["kind"] for m in json.loads(r.stdout)["manifests"]}
    assert {"Service"} <= kinds and ({"Deployment"} <= kinds or {"LeaderWorkerSet"} <= kinds)


def test_cli_chip_comparison():
    r = runner.invoke(app, ["search", "--model", QWEN, "--chips", "h800-sxm-80gb,h20-96gb,ascend-910b-64gb", "--gpus",
                            "8", "--isl", "2000", "--osl", "500", "--tpot-ms", "60", "--json"])
    assert r.exit_code == 0, r.output
    docs = json.loads(r.stdout)["comparison"]
    assert [d["chip"] for d in docs] == ["h800-sxm-80gb", "h20-96gb", "ascend-910b-64gb"]


def test_cli_model_that_cannot_fit_is_an_error():
    r = runner.invoke(app, ["search", "--model", "deepseek-ai/DeepSeek-R1", "--chip", "l4-24gb", "--gpus", "2", "--isl",
                            "1000", "--osl", "100"])
    assert r.exit_code == 2 and "does not fit" in r.output


def test_cli_contradictory_flags():
    r = runner.invoke(app, ["export", "--target", "vllm", "--engine", "sglang", "--model", QWEN, "--chip", H200,
                            "--gpus", "8", "--isl", "100", "--osl", "100"])
    assert r.exit_code == 2 and "contradicts" in r.output


def test_export_at_a_confidence_names_why_nothing_qualifies():
    """export --confidence: the search's rule; where only the prediction meets the target, the refusal says the
    candidate misses it at that confidence and by which factors (not an empty list of misses)."""
    base = ["export", "--target", "vllm", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--chip", "h100-sxm-80gb",
            "--gpus", "1", "--isl", "2000", "--osl", "500"]
    point = runner.invoke(app, [*base, "--tpot-ms", "2.2"])
    assert point.exit_code == 0, point.output
    safe = runner.invoke(app, [*base, "--tpot-ms", "2.2", "--confidence", "0.9"])
    assert safe.exit_code != 0 and "not at 90 % confidence" in safe.output and "TPOT x 1." in safe.output


def test_a_chip_comparison_goes_on_without_a_chip_it_cannot_predict():
    """--chips l4,a10g: the A10G has no published tensor peak. The comparison keeps the L4, says why the A10G is
    left out, and does not call it infeasible; asked for alone, the A10G is still refused with the reason."""
    args = ["search", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpus", "1", "--isl", "1k", "--osl", "200",
            "--tpot-ms", "50", "--json"]
    r = runner.invoke(app, args + ["--chips", "l4,a10g"])
    assert r.exit_code == 0, r.output
    docs = {d["chip"]: d for d in json.loads(r.stdout)["comparison"]}
    assert docs["l4-24gb"]["best"] is not None
    assert docs["a10g-24gb"]["evaluated"] == 0 and "no sourced tensor peak" in docs["a10g-24gb"]["message"]
    alone = runner.invoke(app, args + ["--chips", "a10g"])
    assert alone.exit_code == 2 and "tensor peak" in alone.output


def test_sglangs_launch_command_sets_the_memory_fraction_the_search_assumed(qwen_h200):
    """SGLang's derived default (perf.calibration.reserve_fraction) for the candidate's layout and chunk, written out;
    vLLM's launch keeps the spec's 0.9."""
    from stockpile.perf.calibration import engine_limits
    from stockpile.perf.inference import Configs
    cand, chip = qwen_h200.candidates[0], get_chip(H200)
    lay = cand.layout
    want = engine_limits("sglang", chip, Configs(chunk=cand.chunk), lay["attn_dp"],
                         lay["tp"] * lay["attn_dp"] * lay["pp"])[2]
    spec = deploy_spec(cand, model_id=QWEN, chip=chip, engine="sglang", isl=4000, osl=500)
    assert spec.gpu_memory_utilization == pytest.approx(want, abs=1e-3) != 0.9          # 0.907 on one H200
    assert deploy_spec(cand, model_id=QWEN, chip=chip, engine="vllm", isl=4000, osl=500).gpu_memory_utilization == 0.9
