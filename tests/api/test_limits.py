"""The service under abuse (issue 14): body and nesting limits, NaN/Infinity, server paths, a bounded pool for
heavy endpoints with 429 + Retry-After, offline docs."""
import asyncio
import json
import time

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from stockpile.api.app import app
from stockpile.api.limits import MAX_BODY_BYTES, HeavyPool

client = TestClient(app)
BASE = {"chip": "h100-sxm-80gb", "isl": 100, "osl": 10}


def post(path: str, raw: str | bytes):
    return client.post(path, content=raw, headers={"content-type": "application/json"})


@pytest.mark.parametrize("body,status,says", [
    ({"model": "/etc/passwd.json", **BASE}, 422, "reads no files"),
    ({"model": "../../secrets/config.json", **BASE}, 422, "reads no files"),
    ({"model": "meta-llama/Llama-3.1-8B-Instruct", **BASE, "concurrency": "NaN"}, 422, "concurrency"),
    ({"model": "meta-llama/Llama-3.1-8B-Instruct", **BASE, "gpus": 10 ** 12}, 422, "gpus"),
])
def test_bad_estimate_bodies_get_422_with_the_field(body, status, says):
    r = client.post("/api/estimate", json=body)
    assert r.status_code == status and says in r.json()["error"]


def test_nan_infinity_huge_and_deep_bodies():
    assert post("/api/estimate", '{"model": "x", "concurrency": NaN}').status_code == 422
    assert post("/api/search", '{"model": "x", "gpus": Infinity}').status_code == 422
    assert post("/api/estimate", b'{"model": "' + b"a" * (MAX_BODY_BYTES + 10) + b'"}').status_code == 413
    deep = '{"scenario": {"x": ' + "[" * 200 + "]" * 200 + "}}"
    r = post("/api/plan", deep)
    assert r.status_code == 422 and "nested" in r.json()["error"]
    assert client.post("/api/search", json={"model": "/tmp/a.json", "chip": "h100-sxm-80gb", "gpus": 8,
                                            "isl": 10, "osl": 10}).status_code == 422


def test_an_uploaded_config_is_estimated():
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 2048,
           "num_attention_heads": 16, "num_hidden_layers": 16, "intermediate_size": 8192, "vocab_size": 32000,
           "num_key_value_heads": 4}
    r = client.post("/api/estimate", json={"model": "me/tiny", "config": cfg, **BASE, "concurrency": 4})
    assert r.status_code == 200 and r.json()["model"] == "me/tiny" and r.json()["tpot_ms"] > 0


def test_docs_are_served_without_a_cdn():
    r = client.get("/docs")
    assert r.status_code == 200 and "cdn.jsdelivr" not in r.text and "unpkg" not in r.text


def test_heavy_pool_queues_then_refuses_with_retry_after():
    pool = HeavyPool(active=1, queue=1)

    def slow() -> str:
        time.sleep(0.3)
        return "done"

    async def main():
        return await asyncio.gather(*(pool.run(slow) for _ in range(3)), return_exceptions=True)

    out = asyncio.run(main())
    assert out.count("done") == 2                      # one running, one queued
    refused = [o for o in out if isinstance(o, HTTPException)]
    assert len(refused) == 1 and refused[0].status_code == 429 and refused[0].headers["Retry-After"]


def test_health_answers_while_heavy_work_runs():
    import threading
    results = []
    t = threading.Thread(target=lambda: results.append(client.post(
        "/api/search", json={"model": "meta-llama/Llama-3.1-70B-Instruct", "chip": "h100-sxm-80gb", "gpus": 4096,
                             "isl": 1000, "osl": 100})))
    t.start()
    h = client.get("/api/health")                       # async route: not queued behind the heavy pool
    t.join()
    assert h.status_code == 200 and json.loads(h.text)["status"] == "ok"
    assert results and results[0].status_code == 200    # (latency under load: bench/api_load.py)


@pytest.mark.parametrize("question", [
    {"model": "nvidia/Llama-3.1-8B-Instruct-FP8", "chip": "h100-sxm-80gb", "isl": 1000, "osl": 200, "concurrency": 16},
    {"model": "deepseek-ai/DeepSeek-V3", "chip": "h800-sxm-80gb", "gpus": 16, "ep": 16, "dp": 16,
     "attention_dp": True, "engine": "sglang", "isl": 2000, "osl": 500, "concurrency": 256},
    {"model": "Qwen/Qwen3-32B", "chip": "h20-96gb", "tp": 2, "isl": 2000, "osl": 500, "request_rate": 2,
     "num_requests": 300},
])
def test_cli_and_api_give_the_same_answer(question):
    """One request model for both: the same question asked of the CLI and of the API gets the same answer."""
    from typer.testing import CliRunner

    from stockpile.cli import app as cli
    api = client.post("/api/estimate", json=question)
    assert api.status_code == 200, api.text
    flags = []
    for k, v in question.items():
        if v is True:
            flags.append("--" + k.replace("_", "-"))
        else:
            flags += ["--" + k.replace("_", "-"), str(v)]
    r = CliRunner().invoke(cli, ["estimate", *flags, "--json"])
    assert r.exit_code == 0, r.output
    a, c = api.json(), json.loads(r.stdout)
    for key in ("weight_dtype", "kv_dtype", "layout", "ttft_ms", "tpot_ms", "output_tokens_per_s", "fits",
                "assumptions"):
        assert a[key] == c[key], key
