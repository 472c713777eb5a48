"""Serving under traffic from the command line (CONTRACTS.md): `estimate --request-rate / --trace` with
percentiles, backlog and timeline; `search --request-rate --slo-percentile`; malformed traces."""
import json

import pytest
from typer.testing import CliRunner

from stockpile.cli import app

runner = CliRunner()
MODEL = ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--chip", "h100-sxm-80gb"]


def run(*args: str):
    return runner.invoke(app, list(args))


def write_trace(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_estimate_request_rate_json_has_percentiles_backlog_and_timeline():
    r = run("estimate", *MODEL, "--isl", "1000", "--osl", "200", "--request-rate", "5", "--num-requests", "2000",
            "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    for key in ("ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p90_ms", "tpot_p99_ms",
                "e2e_p99_s", "itl_ms", "backlog", "timeline"):
        assert d[key] is not None, key
    assert d["ttft_p50_ms"] <= d["ttft_p90_ms"] <= d["ttft_p99_ms"]
    assert d["backlog"] == {"requests": 0, "growing": False}
    assert 0 < len(d["timeline"]) <= 500
    assert set(d["timeline"][0]) == {"t_s", "queued", "running", "batch_tokens"}
    assert d["requests_per_s"] == pytest.approx(5.0, rel=0.05)


def test_estimate_far_past_capacity_reports_the_finite_run_backlog():
    r = run("estimate", *MODEL, "--isl", "1000", "--osl", "200", "--request-rate", "500", "--num-requests", "3000",
            "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["backlog"]["growing"] and d["backlog"]["requests"] > 1000
    assert any("past capacity" in a for a in d["assumptions"])
    assert d["requests_per_s"] < 100


def test_estimate_trace_replays_arrivals_and_prefix_groups(tmp_path):
    lines = [json.dumps({"arrival_s": 0.05 * i, "input_len": 800, "output_len": 100,
                         "prefix_group": "sys", "prefix_len": 600}) for i in range(200)]
    with_prefix = run("estimate", *MODEL, "--trace", write_trace(tmp_path / "a.jsonl", lines), "--json")
    plain = [json.dumps({"arrival_s": 0.05 * i, "input_len": 800, "output_len": 100}) for i in range(200)]
    without = run("estimate", *MODEL, "--trace", write_trace(tmp_path / "b.jsonl", plain), "--json")
    assert with_prefix.exit_code == 0 and without.exit_code == 0, with_prefix.output + without.output
    a, b = json.loads(with_prefix.stdout), json.loads(without.stdout)
    assert a["isl"] == 800 and a["request_rate"] == pytest.approx(200 / 9.95, rel=1e-6)
    assert a["ttft_ms"] < b["ttft_ms"]            # 600 of 800 prompt tokens come from the prefix cache


@pytest.mark.parametrize("lines,needle", [
    (['{"arrival_s": 0, "input_len": 10, "output_len": 5}', '{"arrival_s": 1, "input_len": 10'], "line 2"),
    (['{"arrival_s": 0, "input_len": -3, "output_len": 5}'], "line 1"),
    (['{"arrival_s": 2, "input_len": 10, "output_len": 5}', '{"arrival_s": 1, "input_len": 10, "output_len": 5}'],
     "sort the trace"),
    (['{"arrival_s": 0, "output_len": 5}'], "input_len"),
    (['{"arrival_s": 0, "input_len": 10.5, "output_len": 5}'], "whole number"),
    ([""], "no requests"),
])
def test_malformed_trace_names_the_line_or_field(tmp_path, lines, needle):
    r = run("estimate", *MODEL, "--trace", write_trace(tmp_path / "t.jsonl", lines))
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Traceback" not in r.output


def test_rate_of_zero_and_trace_with_rate_are_errors(tmp_path):
    r = run("estimate", *MODEL, "--isl", "100", "--osl", "100", "--request-rate", "0")
    assert r.exit_code == 2 and "request_rate" in r.output
    t = write_trace(tmp_path / "t.jsonl", ['{"arrival_s": 0, "input_len": 10, "output_len": 5}'])
    r = run("estimate", *MODEL, "--trace", t, "--request-rate", "3")
    assert r.exit_code == 2 and "trace" in r.output


def test_search_request_rate_finds_fewest_gpus_and_more_rate_needs_no_fewer():
    def best(rate: str) -> dict:
        r = run("search", *MODEL, "--isl", "1000", "--osl", "200", "--request-rate", rate, "--slo-percentile", "90",
                "--ttft-ms", "500", "--tpot-ms", "40", "--gpus", "16", "--json")
        assert r.exit_code == 0, r.output
        d = json.loads(r.stdout)
        assert d["best"] is not None and d["best"]["meets_slo"]
        assert d["best"]["ttft_ms"] <= 500 and d["best"]["tpot_ms"] <= 40
        return d["best"]
    low, high = best("5"), best("60")
    assert low["gpus"] <= high["gpus"]
    assert high["gpus"] >= 2                      # 60 req/s of 1k/200 is beyond one H100 in the model


def test_search_slo_percentile_needs_a_rate():
    r = run("search", *MODEL, "--gpus", "1", "--isl", "100", "--osl", "100", "--slo-percentile", "90")
    assert r.exit_code == 2 and "request-rate" in r.output
