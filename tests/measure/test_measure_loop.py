"""The loop on the CPU server: measure -> validate -> calibrate --profile -> validate with the profile.

A real llama.cpp server (tests/measure/cpu_server.py) serves a tiny Llama on this machine's CPU; the CPU
is described to Stockpile as a chip (--chip-file) whose figures the test measures on the spot with numpy."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stockpile.cli import app
from stockpile.measure import loadgen

from .cpu_server import PARALLEL, TinyServer, require_tool
from .host_chip import write_host_chip

runner = CliRunner()
ISL, OSL = 32, 16


@pytest.fixture(scope="module")
def runs(cpu_server: TinyServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require_tool(loadgen.loadgen_installed(), f"the load generator ({loadgen.TOOL_NAME})")
    work = tmp_path_factory.mktemp("loop")
    chip = write_host_chip(work / "host.yaml")
    out = work / "runs.csv"
    common = ["measure", "--endpoint", f"{cpu_server.url}/v1", "--model", str(cpu_server.model_dir / "config.json"),
              "--served-model-name", cpu_server.model, "--tokenizer", str(cpu_server.model_dir),
              "--isl", str(ISL), "--osl", str(OSL), "--chip", "host-cpu", "--gpus", "1", "--engine", "other",
              "--chip-file", str(chip), "--num-requests", "8", "--out", str(out)]
    r = runner.invoke(app, [*common, "--concurrency", f"1,{PARALLEL}"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*common, "--request-rate", "2"])
    assert r.exit_code == 0, r.output                      # appended to the same file
    return out, chip


def test_rows_follow_the_measured_data_schema(runs: tuple[Path, Path]) -> None:
    out, _ = runs
    rows = list(csv.DictReader(out.open()))
    assert len({r["id"] for r in rows}) == len(rows)
    points = {(r["concurrency"], r["request_rate"]) for r in rows}
    assert points == {("1", ""), (str(PARALLEL), ""), ("", "2")}
    for point in points:
        got = {r["metric"]: float(r["value"]) for r in rows if (r["concurrency"], r["request_rate"]) == point}
        assert {"output_tokens_per_s", "requests_per_s", "ttft_ms", "tpot_ms", "itl_ms", "e2e_latency_s",
                "ttft_p99_ms", "tpot_p99_ms", "e2e_p99_s"} <= set(got)
        assert got["ttft_p50_ms"] <= got["ttft_p90_ms"] <= got["ttft_p99_ms"]
        assert got["ttft_ms"] < got["e2e_latency_s"] * 1e3
        assert got["output_tokens_per_s"] == pytest.approx(got["requests_per_s"] * OSL, rel=0.02)
    first = rows[0]
    assert first["engine"] == "other" and first["accelerator"] == "host-cpu" and first["output_len"] == str(OSL)
    assert first["model"].endswith("config.json") and "aiperf" in first["notes"]
    assert "8 requests completed of 8" in first["notes"]


def test_validate_then_calibrate_a_profile_round_trip(runs: tuple[Path, Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out, chip = runs
    monkeypatch.setenv("STOCKPILE_HOME", str(tmp_path))
    v = runner.invoke(app, ["validate", str(out), "--chip-file", str(chip), "--json"])
    assert v.exit_code == 0, v.output
    before = json.loads(v.stdout)
    assert before["summary"]["n_predicted"] == before["summary"]["n"] > 0
    c = runner.invoke(app, ["calibrate", str(out), "--profile", "cpu", "--chip-file", str(chip), "--json"])
    assert c.exit_code == 0, c.output
    rep = json.loads(c.stdout)
    assert rep["regimes"] == ["cpu/other"] and rep["held_out_load_points"] >= 1
    assert rep["held_out_median_ape_after"] <= rep["held_out_median_ape_before"]
    assert Path(rep["written"]) == tmp_path / "calibrations" / "cpu.yaml"
    after = json.loads(runner.invoke(app, ["validate", str(out), "--chip-file", str(chip), "--json",
                                           "--calibration", "cpu"]).stdout)
    assert after["summary"]["median_ape"] == pytest.approx(rep["median_ape_after"], abs=1e-3)
    assert before["summary"]["median_ape"] == pytest.approx(rep["median_ape_before"], abs=1e-3)
    assert os.path.getsize(rep["written"]) > 0
