"""Engine names: spellings, ports, engines without a calibration, front ends that hide their engine."""
import csv
import json

import pytest
from typer.testing import CliRunner

from stockpile.catalog.engines import ENGINES, known_names, read_engine
from stockpile.cli import app
from stockpile.errors import InputError, UnknownNameError


@pytest.mark.parametrize("name,engine", [
    ("vLLM", "vllm"), ("TensorRT-LLM", "trtllm"), ("tensorrt_llm", "trtllm"), ("SGLang", "sglang"),
    ("text-generation-inference", "tgi"), ("vllm-ascend", "vllm"), ("vLLM_Ascend", "vllm"),
    ("MindIE", "other"), ("LMDeploy", "other"), ("llama.cpp", "other"), ("xLLM", "other"), ("other", "other"),
])
def test_names_read_as_calibrated_engines(name, engine):
    read = read_engine(name)
    assert read.engine == engine and read.engine in ENGINES and read.version is None


def test_notes_say_how_a_port_or_an_uncalibrated_engine_was_read():
    assert read_engine("TensorRT-LLM").note is None            # a spelling passes silently
    assert "port" in read_engine("vllm-ascend").note
    assert "no calibration of its own" in read_engine("MindIE").note
    assert read_engine("other").note is None
    assert read_engine("llm-d").engine == "vllm" and "serves through" in read_engine("llm-d").note


@pytest.mark.parametrize("name,engine", [("dynamo-trt", "trtllm"), ("Dynamo_TRTLLM", "trtllm"),
                                         ("dynamo-sglang", "sglang"), ("dynamo-vllm", "vllm"),
                                         ("triton-trtllm", "trtllm")])
def test_a_front_end_named_with_its_backend_is_read_as_that_backend(name, engine):
    read = read_engine(name)
    assert read.engine == engine and "serves through" in read.note
    with pytest.raises(InputError, match="backend"):      # without the backend the engine stays unknown
        read_engine(name.split("-")[0].split("_")[0])


@pytest.mark.parametrize("name,engine,version", [
    ("vllm 0.11.0", "vllm", "0.11.0"), ("vLLM v0.6.3", "vllm", "0.6.3"),
    ("sglang==0.4.3.post2", "sglang", "0.4.3.post2"), ("trtllm-1.0.0rc3", "trtllm", "1.0.0rc3"),
])
def test_release_written_into_the_name(name, engine, version):
    read = read_engine(name)
    assert (read.engine, read.version) == (engine, version)
    with pytest.raises(InputError, match="--engine-version"):
        read_engine(name, allow_version=False)


def test_front_ends_and_unknown_names_are_refused_with_the_fix():
    with pytest.raises(InputError, match="backend"):
        read_engine("Dynamo")
    with pytest.raises(UnknownNameError) as e:
        read_engine("lmdeploi")
    assert "lmdeploy" in e.value.suggestions
    assert set(ENGINES) <= set(known_names())


def _row(engine: str, **kw) -> dict[str, str]:
    row = {"id": f"r-{engine}", "model": "Qwen/Qwen3-32B", "accelerator": "h100-sxm-80gb", "num_accelerators": "1",
           "engine": engine, "weight_dtype": "bf16", "kv_dtype": "", "tp": "1", "pp": "", "ep": "", "dp": "",
           "input_len": "1000", "output_len": "200", "concurrency": "8", "scenario": "server", "metric": "tpot_ms",
           "value": "30", "source_url": "https://example.org/x", "notes": "", "engine_version": ""}
    row.update(kw)
    return row


def test_validate_predicts_rows_of_other_engines(tmp_path):
    rows = [_row("MindIE"), _row("vllm-ascend"), _row("vllm"), _row("vllm 0.6.3"), _row("vllm", engine_version="0.6.3"),
            _row("dynamo")]
    for i, r in enumerate(rows):
        r["id"] = f"r{i}"
    path = tmp_path / "rows.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    res = CliRunner().invoke(app, ["validate", str(path), "--json"])
    out = json.loads(res.stdout)["rows"]
    assert [r["status"] for r in out] == ["ok"] * 5 + ["invalid"]
    assert "no calibration of its own" in " ".join(out[0]["assumed"])
    assert out[1]["predicted"] == pytest.approx(out[2]["predicted"])           # a port: the engine's own model
    assert out[3]["predicted"] == pytest.approx(out[4]["predicted"])           # release in the cell = the column
    assert out[3]["predicted"] != pytest.approx(out[2]["predicted"])           # vLLM 0.6 is the V0 engine
    assert "engine" in out[5]["reason"] and "backend" in out[5]["reason"]


def test_cli_names_the_release_fix():
    res = CliRunner().invoke(app, ["estimate", "--model", "Qwen/Qwen3-32B", "--chip", "h100-sxm-80gb", "--engine",
                                   "vllm 0.11.0", "--isl", "1000", "--osl", "200", "--concurrency", "8"])
    assert res.exit_code != 0 and "--engine-version 0.11.0" in res.output
    res = CliRunner().invoke(app, ["estimate", "--model", "Qwen/Qwen3-32B", "--chip", "h100-sxm-80gb", "--engine",
                                   "MindIE", "--isl", "1000", "--osl", "200", "--concurrency", "8", "--json"])
    assert res.exit_code == 0, res.output
    assert any("read as other" in a for a in json.loads(res.stdout)["assumptions"])
