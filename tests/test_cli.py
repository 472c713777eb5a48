"""The CLI contracts (CONTRACTS.md): JSON shapes, one-line errors, exit codes."""
import json

import pytest
from typer.testing import CliRunner

from stockpile.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_estimate_json_contract():
    r = run("estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--chip", "h100-sxm-80gb", "--isl", "1k",
            "--osl", "256", "--concurrency", "16", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    for key in ("ttft_ms", "tpot_ms", "output_tokens_per_s", "output_tokens_per_s_per_gpu", "requests_per_s",
                "fits", "memory_gb"):
        assert key in d
    assert d["fits"] is True and d["memory_gb"]["weights_gb"] > 15
    assert d["tpot_ms"] > 0 and d["output_tokens_per_s"] > 0


def test_estimate_human_table():
    r = run("estimate", "--model", "Qwen/Qwen3-32B", "--chip", "h20-96gb", "--tp", "2", "--isl", "2000",
            "--osl", "500", "--request-rate", "2")
    assert r.exit_code == 0, r.output
    assert "TTFT" in r.stdout and "TPOT" in r.stdout


def test_estimate_takes_sglangs_polling_and_flushing_flags():
    base = ["estimate", "--model", "Qwen/Qwen3-30B-A3B", "--chip", "h100-sxm-80gb", "--engine", "sglang", "--isl",
            "1000", "--osl", "1000", "--concurrency", "32", "--length-spread", "0.2", "--json"]   # under the KV cap
    plain = json.loads(run(*base).stdout)
    r = run(*base, "--scheduler-recv-interval", "30", "--stream-interval", "30")
    assert r.exit_code == 0, r.output
    polled = json.loads(r.stdout)
    # waiting for the poll lengthens TTFT; fewer prompt steps and output flushes shorten TPOT
    assert polled["ttft_ms"] > plain["ttft_ms"] and polled["tpot_ms"] < plain["tpot_ms"]
    # another engine: a one-line error naming the field
    r = run(*base[:5], "--engine", "vllm", *base[7:], "--scheduler-recv-interval", "30")
    assert r.exit_code == 2 and "recv_interval" in r.output and "Traceback" not in r.output
    assert run(*base, "--stream-interval", "0").exit_code == 2


def test_estimate_takes_tensorrt_llms_batch_waiting():
    base = ["estimate", "--model", "meta-llama/Llama-3.1-70B-Instruct", "--chip", "h200-sxm-141gb", "--tp", "2",
            "--weight-dtype", "fp8", "--engine", "trtllm", "--isl", "1024", "--osl", "1024", "--concurrency", "16",
            "--length-spread", "0.2", "--json"]
    plain = json.loads(run(*base).stdout)
    r = run(*base, "--batch-wait-iters", "20", "--batch-wait-tokens", "14746")
    assert r.exit_code == 0, r.output
    held = json.loads(r.stdout)
    # a held prompt waits for others (or 20 iterations): TTFT grows, the decode step does not change
    assert held["ttft_ms"] > 1.5 * plain["ttft_ms"] and held["tpot_ms"] == pytest.approx(plain["tpot_ms"])
    r = run(*base, "--batch-wait-iters", "20")
    assert r.exit_code == 2 and "batch_wait_tokens" in r.output and "Traceback" not in r.output
    vllm = [*base[:10], "vllm", *base[11:]]
    r = run(*vllm, "--batch-wait-iters", "20", "--batch-wait-tokens", "14746")
    assert r.exit_code == 2 and "batch_wait_iters" in r.output


def test_unknown_chip_one_line_error_with_suggestion():
    r = run("estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--chip", "h100-80gb", "--isl", "100",
            "--osl", "100")
    assert r.exit_code == 2
    assert "h100-sxm-80gb" in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) <= 3


def test_negative_length_is_an_error():
    r = run("estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--chip", "h100-sxm-80gb", "--isl", "-5",
            "--osl", "100")
    assert r.exit_code == 2 and "isl" in r.output


def test_impossible_layout_is_an_error():
    r = run("estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--chip", "h100-sxm-80gb", "--gpus", "4",
            "--tp", "8", "--isl", "100", "--osl", "100")
    assert r.exit_code == 2 and "tp" in r.output


def test_model_that_does_not_fit_says_so():
    r = run("estimate", "--model", "meta-llama/Llama-3.1-405B", "--chip", "l4-24gb", "--isl", "100", "--osl", "100",
            "--json")
    assert r.exit_code == 1            # CONTRACTS.md: non-zero in JSON mode too
    d = json.loads(r.stdout)
    assert d["fits"] is False and "does not fit" in d["limits"] and d["ttft_ms"] is None


def test_catalog_json():
    chips = json.loads(run("catalog", "chips", "--json").stdout)
    assert all({"id", "sources"} <= set(c) for c in chips)
    models = json.loads(run("catalog", "models", "--json").stdout)
    assert all({"id", "architecture", "params_b", "active_params_b"} <= set(m) for m in models)


def test_validate_json_contract_and_bad_rows(tmp_path):
    header = ("id,model,accelerator,num_accelerators,engine,weight_dtype,kv_dtype,tp,pp,ep,dp,input_len,output_len,"
              "concurrency,scenario,metric,value,source_url,notes\n")
    good = "a,meta-llama/Llama-3.1-8B-Instruct,h100-sxm-80gb,1,vllm,bf16,bf16,1,1,,1,1000,200,8,server,tpot_ms,9,u,\n"
    bad_chip = "b,meta-llama/Llama-3.1-8B-Instruct,h999,1,vllm,bf16,bf16,1,1,,1,1000,200,8,server,tpot_ms,9,u,\n"
    bad_num = "c,meta-llama/Llama-3.1-8B-Instruct,h100-sxm-80gb,1,vllm,bf16,bf16,1,1,,1,abc,200,8,server,tpot_ms,9,u,\n"
    f = tmp_path / "m.csv"
    f.write_text(header + good + bad_chip + bad_num)
    r = run("validate", str(f), "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    rows = {x["id"]: x for x in d["rows"]}
    assert rows["a"]["status"] == "ok" and abs(rows["a"]["error"] - (rows["a"]["predicted"] - 9) / 9) < 1e-5
    assert rows["b"]["status"] == "invalid" and rows["b"]["predicted"] is None and "h999" in rows["b"]["reason"]
    assert rows["c"]["status"] == "invalid" and "input_len" in rows["c"]["reason"]
    s = d["summary"]
    assert (s["n"], s["n_predicted"]) == (3, 1)
    assert {"median_ape", "mape", "p90_ape", "by_metric"} <= set(s)


def test_validate_rejects_a_file_that_is_not_measured_data(tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("a,b\n1,2\n")
    r = run("validate", str(f))
    assert r.exit_code == 2 and "CONTRACTS" in r.output


def test_train_json_contract():
    r = run("train", "--model", "meta-llama/Llama-3.1-8B", "--chip", "h100-sxm-80gb", "--gpus", "64", "--tokens", "1T",
            "--seq-len", "8192", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    for key in ("layout", "step_time_s", "tokens_per_s", "tokens_per_s_per_gpu", "tflops_per_gpu", "mfu", "hfu",
                "memory_gb", "gpu_hours", "days", "goodput"):
        assert key in d, key
    assert {"tp", "pp", "dp", "ep", "cp", "micro_batch", "recompute"} <= set(d["layout"])
    assert 0 < d["mfu"] <= d["hfu"] <= 1 and 0 < d["goodput"] <= 1
    assert d["gpu_hours"] == pytest.approx(1e12 / d["tokens_per_s"] * 64 / 3600 / d["goodput"], rel=0.2)


def test_train_says_energy_is_unknown_rather_than_zero_without_a_tdp():
    # TPU v6e has no sourced TDP: the table must not print 0.00 GWh beside a note that says the energy is unknown
    r = run("train", "--model", "meta-llama/Llama-3.1-8B", "--chip", "tpu-v6e-32gb", "--gpus", "64", "--tokens", "1T")
    assert r.exit_code == 0, r.output
    line = next(ln for ln in r.output.splitlines() if "energy" in ln and "│" in ln)
    assert "unknown" in line and "GWh" not in line
    r = run("train", "--model", "meta-llama/Llama-3.1-8B", "--chip", "h100-sxm-80gb", "--gpus", "64", "--tokens", "1T")
    assert any("energy" in ln and "GWh" in ln for ln in r.output.splitlines())


def test_train_takes_the_framework_whose_defaults_it_models():
    """--framework picks a framework's defaults (perf/frameworks.py): torchtitan shards with FSDP (ZeRO-3) and runs
    FlashAttention-2, so the same job on H100 is slower than under Megatron; the table and the JSON name it."""
    common = ["train", "--model", "meta-llama/Llama-3.1-8B", "--chip", "h100-sxm-80gb", "--gpus", "64", "--tokens",
              "1T", "--seq-len", "8192", "--json"]
    mega, titan = (json.loads(run(*common, *extra).stdout) for extra in ([], ["--framework", "torchtitan"]))
    assert mega["framework"] == "megatron" and titan["framework"] == "torchtitan"
    assert titan["layout"]["zero"] == 3 and mega["layout"]["zero"] in (0, 1)
    assert titan["tokens_per_s"] < mega["tokens_per_s"]


@pytest.mark.parametrize("args,field", [(["--tokens", "0"], "tokens"), (["--tokens", "1T", "--precision", "int3"],
                                                                        "precision"),
                                        (["--tokens", "1T", "--framework", "torchtitn"], "torchtitan")])
def test_train_bad_input(args, field):
    r = run("train", "--model", "meta-llama/Llama-3.1-8B", "--chip", "h100-sxm-80gb", "--gpus", "8", *args)
    assert r.exit_code == 2 and field in r.output and "Traceback" not in r.output


def test_plan_json_contract_and_schema():
    r = run("plan", "--samples", "500", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert {"runway", "generations", "allocation", "cost_usd", "unmet"} <= set(d)
    assert {"p10", "p50", "p90"} <= set(d["runway"])
    schema = json.loads(run("plan", "--schema").stdout)
    assert "properties" in schema or "$defs" in schema


def test_size_json():
    r = run("size", "--target-loss", "2.0", "--inference-tokens", "1e15", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["optimal"]["total_flop"] <= d["chinchilla"]["total_flop"] * 1.0001


def test_validate_row_on_a_chip_without_figures_is_unsupported_and_the_rest_run(tmp_path):
    header = ("id,model,accelerator,num_accelerators,engine,weight_dtype,kv_dtype,tp,pp,ep,dp,input_len,output_len,"
              "concurrency,scenario,metric,value,source_url,notes\n")
    rows = ("a,Qwen/Qwen3-8B,rtx-4090d-24gb,1,vllm,bf16,bf16,1,1,,1,1000,200,8,server,tpot_ms,9,u,\n"
            "b,Qwen/Qwen3-8B,h100-sxm-80gb,1,vllm,bf16,bf16,1,1,,1,1000,200,8,server,tpot_ms,9,u,\n")
    f = tmp_path / "k.csv"
    f.write_text(header + rows)
    d = json.loads(run("validate", str(f), "--json").stdout)
    status = {r["id"]: r["status"] for r in d["rows"]}
    assert status == {"a": "unsupported", "b": "ok"}


CHIP_FILE = """- id: my-npu-64gb
  name: My NPU 64GB
  vendor: example
  family: other
  memory_gb: {value: 64, source: "https://example.com/datasheet"}
  memory_bw_gbs: {value: 1600, source: "https://example.com/datasheet"}
  bf16_tflops: {value: 300, source: "https://example.com/datasheet"}
  scaleup_bw_gbs: {value: 200, source: "https://example.com/datasheet"}
  scaleup_domain: {value: 8, source: "https://example.com/datasheet"}
  tdp_w: {value: 400, source: "https://example.com/datasheet"}
"""


def test_chip_file_serves_estimate_search_and_train(tmp_path):
    f = tmp_path / "chips.yaml"
    f.write_text(CHIP_FILE)
    common = ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--chip", "my-npu-64gb", "--chip-file", str(f)]
    e = run("estimate", *common, "--isl", "1000", "--osl", "200", "--concurrency", "8", "--json")
    assert e.exit_code == 0, e.output
    d = json.loads(e.stdout)
    assert d["chip"] == "my-npu-64gb" and d["memory_gb"]["capacity_gb"] == pytest.approx(64 * 2**30 / 1e9, rel=1e-3)
    # half the bandwidth of a 3.2 TB/s chip: decode (bandwidth-bound at batch 8) is slower than on an H100
    h = json.loads(run("estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--chip", "h100-sxm-80gb",
                       "--isl", "1000", "--osl", "200", "--concurrency", "8", "--json").stdout)
    assert d["tpot_ms"] > 1.5 * h["tpot_ms"]
    s = run("search", *common, "--gpus", "8", "--isl", "1000", "--osl", "200", "--json")
    assert s.exit_code == 0 and json.loads(s.stdout)["chip"] == "my-npu-64gb", s.output
    t = run("train", *common, "--gpus", "64", "--tokens", "1T", "--json")
    assert t.exit_code == 0, t.output
    # without the file the chip is unknown; a file missing a figure names it
    assert run("estimate", *common[:4], "--isl", "10", "--osl", "10").exit_code == 2
    f.write_text(CHIP_FILE.replace('  scaleup_bw_gbs: {value: 200, source: "https://example.com/datasheet"}\n', ""))
    r = run("estimate", *common, "--isl", "10", "--osl", "10", "--concurrency", "1")
    assert r.exit_code == 2 and "scaleup_bw_gbs" in r.output and "Traceback" not in r.output
