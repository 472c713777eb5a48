"""Property-based fuzzing (issue 14): whatever the input, the CLI answers with its result or a one-line error
and exit code 1 or 2, never a traceback; the API answers 200 or a 4xx, never a 5xx; scenario loading and
validate raise nothing but Stockpile's own errors, nor does reading a model config.json. Run `make fuzz` for
thousands of cases per target."""
import copy
import csv
import io
import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from stockpile.cli import app

pytestmark = pytest.mark.fuzz
runner = CliRunner()
FUZZ = bool(os.environ.get("STOCKPILE_FUZZ"))


def cases(sample: int, fuzz: int):
    """Examples per target: a sample in the default suite, thousands under `make fuzz` (about 17,500 in all)."""
    return settings(max_examples=fuzz if FUZZ else sample)

CHIPS = ["h100-sxm-80gb", "h20-96gb", "ascend-910b-64gb", "mi300x-192gb", "h100", "", "x" * 300, "../etc"]
MODELS = ["meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen3-30B-A3B", "deepseek-ai/DeepSeek-V3", "nope/none",
          "/tmp/nothing.json", ""]
ENGINES = ["vllm", "sglang", "trtllm", "tgi", "other", "banana", ""]
DTYPES = ["bf16", "fp8", "fp4", "int4", "fp16", "fp32", "banana", "fp8,bf16", ",", ""]
numbers = st.one_of(st.integers(-10, 10 ** 7).map(str), st.floats(allow_nan=True, allow_infinity=True).map(str),
                    st.sampled_from(["1k", "2M", "1e9", "-0", "abc", "", "1.5T", "nan", "inf", "0x10"]))


def _no_traceback(result) -> None:
    assert "Traceback" not in result.output, result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 1, 2), (result.exit_code, result.output)


@cases(40, 4000)
@given(model=st.sampled_from(MODELS), chip=st.sampled_from(CHIPS), engine=st.sampled_from(ENGINES),
       wd=st.sampled_from(DTYPES), isl=numbers, osl=numbers, load=st.sampled_from(["--concurrency", "--request-rate",
                                                                                     None]),
       value=numbers, tp=st.one_of(st.none(), st.integers(-2, 300)), pp=st.one_of(st.none(), st.integers(-1, 200)),
       draft=st.integers(-1, 20), accept=st.one_of(st.none(), st.floats(-1, 30)))
def test_estimate_cli(model, chip, engine, wd, isl, osl, load, value, tp, pp, draft, accept):
    args = ["estimate", "--model", model, "--chip", chip, "--engine", engine, "--isl", isl, "--osl", osl,
            "--spec-draft", str(draft)]
    if wd:
        args += ["--weight-dtype", wd]
    if load:
        args += [load, value, "--num-requests", "50"]
    if tp is not None:
        args += ["--tp", str(tp)]
    if pp is not None:
        args += ["--pp", str(pp)]
    if accept is not None:
        args += ["--spec-accept", str(accept)]
    _no_traceback(runner.invoke(app, args))


@cases(12, 500)
@given(chips=st.sampled_from(CHIPS + ["h100-sxm-80gb,h20-96gb", ",,,"]), gpus=numbers, isl=numbers,
       ttft=st.one_of(st.none(), numbers), tpot=st.one_of(st.none(), numbers), wd=st.sampled_from(DTYPES),
       rate=st.one_of(st.none(), numbers), pctl=st.one_of(st.none(), st.floats(-10, 200)))
def test_search_cli(chips, gpus, isl, ttft, tpot, wd, rate, pctl):
    args = ["search", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--chips", chips, "--gpus", gpus,
            "--isl", isl, "--osl", "100", "--no-disagg"]
    for flag, v in (("--ttft-ms", ttft), ("--tpot-ms", tpot), ("--request-rate", rate), ("--slo-percentile", pctl)):
        if v is not None:
            args += [flag, str(v)]
    if wd:
        args += ["--weight-dtype", wd]
    _no_traceback(runner.invoke(app, args))


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10 ** 12, 10 ** 12),
                                     st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                           max_leaves=20)
FIELDS = {"model": st.sampled_from(MODELS), "chip": st.sampled_from(CHIPS), "isl": json_values,
          "osl": json_values, "concurrency": json_values, "request_rate": json_values, "gpus": json_values,
          "tp": json_values, "engine": st.sampled_from(ENGINES), "trace": json_values, "config": json_values,
          "num_requests": st.one_of(st.integers(-5, 500), json_values)}


@cases(40, 4000)
@given(body=st.fixed_dictionaries({}, optional=FIELDS), path=st.sampled_from(["/api/estimate", "/api/search",
                                                                              "/api/train"]),
       raw=st.one_of(st.none(), st.sampled_from(['{"isl": NaN}', "[1,2", "null", '"x"', "{}" * 3, "\x00"])))
def test_api_bodies(body, path, raw):
    client = _client()
    if path == "/api/search" and isinstance(body.get("gpus"), int) and body["gpus"] > 4096:
        body["gpus"] = 4096                     # bounded, but a big valid search is slow for a fuzz case
    r = (client.post(path, content=raw, headers={"content-type": "application/json"}) if raw is not None
         else client.post(path, json=body))
    assert r.status_code < 500, (r.status_code, r.text[:300])


_CLIENT = None


def _client():
    global _CLIENT
    if _CLIENT is None:
        from fastapi.testclient import TestClient

        from stockpile.api.app import app as api
        _CLIENT = TestClient(api, raise_server_exceptions=False)
    return _CLIENT


EXAMPLES: dict[str, dict] = {}


def _example(name: str = "hyperscaler") -> dict:
    """A bundled example scenario (hyperscaler, or mixed-pool with its chip pairs), as a fresh dict."""
    if name not in EXAMPLES:
        from importlib import resources

        import yaml
        EXAMPLES[name] = yaml.safe_load((resources.files("stockpile") / "data" / "examples" / f"{name}.yaml")
                                        .read_text())
    return copy.deepcopy(EXAMPLES[name])


def _paths(doc, prefix=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


@cases(40, 3000)
@given(data=st.data())
def test_scenario_mutations(data):
    from stockpile.errors import StockpileError
    from stockpile.fleet.scenario_load import load_scenario
    doc = _example(data.draw(st.sampled_from(["hyperscaler", "mixed-pool"])))
    paths = list(_paths(doc))
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(paths))
        parent = doc
        try:
            for k in path[:-1]:
                parent = parent[k]
            new = data.draw(st.one_of(json_values, st.just("__delete__"), st.sampled_from(
                [-1, 0, 1e30, "2019-13", "h999", [], {}, True])))
            if new == "__delete__":
                del parent[path[-1]]
            else:
                parent[path[-1]] = new
        except (KeyError, IndexError, TypeError):
            continue
    try:
        load_scenario(doc)
    except StockpileError:
        pass


COLUMNS = ["id", "model", "accelerator", "num_accelerators", "engine", "weight_dtype", "kv_dtype", "tp", "pp", "ep",
           "dp", "input_len", "output_len", "concurrency", "scenario", "metric", "value", "source_url", "notes",
           "request_rate"]
cell = st.one_of(st.sampled_from(["", "1", "8", "-3", "nan", "inf", "1e400", "abc", "h100-sxm-80gb", "vllm",
                                  "ttft_ms", "tpot_ms", "output_tokens_per_s", "meta-llama/Llama-3.1-8B-Instruct",
                                  "fp8", "server", "1000", "0.5"]), st.text(max_size=12))


@cases(40, 3000)
@given(rows=st.lists(st.lists(cell, min_size=0, max_size=len(COLUMNS) + 2), min_size=1, max_size=6))
def test_measured_csv(tmp_path_factory, rows):
    from stockpile.calibration.validate import validate_file
    from stockpile.errors import StockpileError
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow(r)
    f = tmp_path_factory.mktemp("csv") / "m.csv"
    f.write_text(buf.getvalue())
    try:
        doc = validate_file(f)
    except StockpileError:
        return
    assert doc["summary"]["n"] == len(doc["rows"])
    for r in doc["rows"]:
        assert r["status"] in ("ok", "invalid", "unsupported")
        if r["status"] == "ok":
            assert math.isfinite(r["predicted"])


@cases(10, 400)
@given(target=st.sampled_from(["vllm", "sglang", "k8s", "trtllm", ""]), fmt=st.sampled_from(
    ["text", "script", "compose", "yaml", "", None]), gpus=st.sampled_from(["1", "4", "8", "16", "0", "-2", "x"]),
       mml=st.one_of(st.none(), numbers), disagg=st.booleans(), rank=st.integers(-1, 4))
def test_export_cli(tmp_path_factory, target, fmt, gpus, mml, disagg, rank):
    args = ["export", "--target", target, "--model", "Qwen/Qwen3-8B", "--chip", "h100-sxm-80gb", "--gpus", gpus,
            "--isl", "2000", "--osl", "200", "--rank", str(rank), "--disagg" if disagg else "--no-disagg"]
    if fmt is not None:
        args += ["--format", fmt]
    if mml is not None:
        args += ["--max-model-len", mml]
    _no_traceback(runner.invoke(app, args))


@cases(10, 400)
@given(endpoint=st.sampled_from(["http://127.0.0.1:9/v1", "localhost:1", "", "ftp://x", "http://[::1"]),
       isl=numbers, osl=numbers, load=st.sampled_from(["--concurrency", "--request-rate"]), value=numbers,
       chip=st.sampled_from(CHIPS), engine=st.sampled_from(ENGINES), gpus=st.sampled_from(["1", "0", "-1", "x"]),
       out=st.sampled_from(["runs.csv", "", "."]))
def test_measure_cli_without_a_server(tmp_path_factory, endpoint, isl, osl, load, value, chip, engine, gpus, out):
    """Every bad flag, and an endpoint nothing listens on, end in a one-line error (no server is started)."""
    where = tmp_path_factory.mktemp("m")
    args = ["measure", "--endpoint", endpoint, "--model", "Qwen/Qwen3-8B", "--isl", isl, "--osl", osl, load, value,
            "--chip", chip, "--gpus", gpus, "--engine", engine, "--num-requests", "2",
            "--out", str(where / out) if out else ""]
    r = runner.invoke(app, args)
    _no_traceback(r)
    assert r.exit_code != 0          # nothing listens on port 9, so no run ever succeeds here


CONFIGS = ["meta-llama__Llama-3.1-8B-Instruct.json", "deepseek-ai__DeepSeek-V3.json", "Qwen__Qwen3.5-397B-A17B.json",
           "nvidia__NVIDIA-Nemotron-3-Super-120B-A12B.json", "deepseek-ai__DeepSeek-V4-Flash.json",
           "nvidia__Llama-3_3-Nemotron-Super-49B-v1.json", "moonshotai__Kimi-K3.json", "google__gemma-4-26B-A4B.json"]
config_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 10 ** 6), st.floats(allow_nan=True),
                          st.text(max_size=5), st.lists(st.integers(-1, 200), max_size=4),
                          st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2))


@cases(60, 3000)
@given(st.sampled_from(CONFIGS), st.data())
def test_config_mutations(name, data):
    """A user's config.json (`--model path`) with any field set to anything: a ModelSpec or a DataError naming the
    model, never another exception."""
    import json
    from importlib import resources

    from stockpile.catalog.models import spec_from_config
    from stockpile.errors import DataError
    cfg = json.loads((resources.files("stockpile") / "data" / "models" / name).read_text())
    target = cfg["text_config"] if isinstance(cfg.get("text_config"), dict) and data.draw(st.booleans()) else cfg
    key = data.draw(st.sampled_from(sorted(target)))
    target[key] = data.draw(config_values)
    try:
        spec = spec_from_config(cfg, model_id="user/model")
    except DataError as e:
        assert "user/model" in str(e)
        return
    assert spec.params >= 0 or not math.isfinite(spec.params)
