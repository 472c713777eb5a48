"""What measure writes: a load point as measured-data rows, and the deployment read from `export --json`."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stockpile.calibration.rows import inference_case
from stockpile.cli import app
from stockpile.errors import InputError
from stockpile.measure.loadgen import LatencyStats, LoadResult
from stockpile.measure.rows import Deployment, _kept, deployment_from_spec, merge_csv, rows_for


def _result(mode: str = "concurrency", load: float = 8) -> LoadResult:
    lat = LatencyStats(mean=100.0, p50=90.0, p90=150.0, p99=200.0)
    return LoadResult(generator="aiperf", generator_version="0.13.0", endpoint="http://h:8000", model="m",
                      isl=1000, osl=200, mode=mode, load=load, num_requests=64, completed=64, failed=0,  # type: ignore[arg-type]
                      duration_s=32.0, input_tokens_mean=1000.4, output_tokens_mean=200.0,
                      output_tokens_per_s=400.0, total_tokens_per_s=2400.8, requests_per_s=2.0,
                      ttft_ms=lat, tpot_ms=LatencyStats(20.0, 19.0, 25.0, 30.0), itl_ms=LatencyStats(20.5, 19.0, 26.0, 40.0),
                      e2e_ms=LatencyStats(4100.0, 4000.0, 4500.0, 5000.0))


def test_a_load_point_becomes_one_row_per_metric() -> None:
    dep = Deployment(model="Qwen/Qwen3-8B", chip="h100-sxm-80gb", gpus=4, engine="vllm", engine_version="0.33.0",
                     tp=2, pp=1, ep=1, dp=1, flags=("--max-num-seqs", "128"))
    rows = rows_for(dep, _result(), endpoint="http://h:8000/v1", run_id="r", start=5)
    got = {r["metric"]: float(r["value"]) for r in rows}
    assert got["output_tokens_per_s_per_gpu"] == 100.0          # 400 tok/s over 4 GPUs
    assert got["e2e_latency_s"] == 4.1 and got["e2e_p99_s"] == 5.0
    assert got["ttft_p90_ms"] == 150.0 and got["tpot_ms"] == 20.0 and got["itl_ms"] == 20.5
    assert [r["id"] for r in rows][:2] == ["r-5", "r-6"]
    r0 = rows[0]
    assert (r0["input_len"], r0["output_len"], r0["concurrency"], r0["request_rate"]) == ("1000", "200", "8", "")
    case = inference_case(r0)                                  # validate reads the notes back
    assert case.max_seqs == 128 and case.num_requests == 64 and case.engine_version == "0.33.0"
    rate = rows_for(dep, _result("request_rate", 1.5), endpoint="e", run_id="q")[0]
    assert rate["request_rate"] == "1.5" and rate["concurrency"] == "" and "Poisson" in rate["notes"]
    assert inference_case(rate).request_rate == 1.5
    # a CUDA-graph limit in the launch flags travels too: validate then evaluates the run with it
    eager = Deployment(model="Qwen/Qwen3-8B", chip="h100-sxm-80gb", gpus=1, engine="sglang",
                       flags=_kept(["--port", "30000", "--cuda-graph-max-bs", "64", "--host", "0.0.0.0"]))
    assert eager.flags == ("--cuda-graph-max-bs", "64")
    assert inference_case(rows_for(eager, _result(), endpoint="e", run_id="g")[0]).graph_max == 64
    off = Deployment(model="Qwen/Qwen3-8B", chip="h100-sxm-80gb", gpus=1, engine="vllm", flags=_kept(["--enforce-eager"]))
    assert inference_case(rows_for(off, _result(), endpoint="e", run_id="v")[0]).graph_max == 0


def test_rows_are_appended_to_an_existing_file_and_a_foreign_file_is_refused(tmp_path: Path) -> None:
    dep = Deployment(model="m/m", chip="h100-sxm-80gb", gpus=1, engine="other")
    first = rows_for(dep, _result(), endpoint="e", run_id="a")
    path = tmp_path / "runs.csv"
    path.write_text(merge_csv(path, first))
    both = list(csv.DictReader(io.StringIO(merge_csv(path, rows_for(dep, _result(), endpoint="e", run_id="b")))))
    assert len(both) == 2 * len(first) and both[0]["id"] == "a-1" and both[-1]["id"].startswith("b-")
    (tmp_path / "x.csv").write_text("name,age\nx,1\n")
    with pytest.raises(InputError, match="not a measured-data CSV"):
        merge_csv(tmp_path / "x.csv", first)
    with pytest.raises(InputError, match="engine"):
        Deployment(model="m", chip="c", gpus=1, engine="magic")


def test_the_deployment_comes_from_export_json(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["export", "--target", "sglang", "--model", "Qwen/Qwen3-32B", "--chip",
                                 "h100-sxm-80gb", "--gpus", "16", "--isl", "4000", "--osl", "500", "--tpot-ms", "50",
                                 "--json", "--out", str(tmp_path / "spec.json")])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "spec.json").read_text())
    dep = deployment_from_spec(tmp_path / "spec.json")
    assert dep.engine == "sglang" and dep.engine_version == "0.5.23" and dep.chip == "h100-sxm-80gb"
    assert dep.gpus == 16 and dep.model == "Qwen/Qwen3-32B"
    assert "--max-running-requests" in dep.flags
    if doc["spec"]["disaggregated"]:
        assert {p[0] for p in dep.pools} == {"prefill", "decode"} and sum(p[5] for p in dep.pools) == 16
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="export"):
        deployment_from_spec(tmp_path / "bad.json")
