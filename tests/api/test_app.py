from fastapi.testclient import TestClient

from stockpile.api.app import app

client = TestClient(app)


def test_health_and_catalogs():
    assert client.get("/api/health").json()["status"] == "ok"
    chips = client.get("/api/chips").json()
    assert any(c["id"] == "h20-96gb" for c in chips)
    assert len(client.get("/api/models").json()) >= 40


def test_estimate_and_unknown_chip():
    r = client.post("/api/estimate", json={"model": "meta-llama/Llama-3.1-8B-Instruct", "chip": "h100-sxm-80gb",
                                           "isl": 1000, "osl": 200, "concurrency": 8})
    assert r.status_code == 200 and r.json()["fits"] and r.json()["tpot_ms"] > 0
    r = client.post("/api/estimate", json={"model": "meta-llama/Llama-3.1-8B-Instruct", "chip": "h100",
                                           "isl": 1000, "osl": 200})
    assert r.status_code == 404 and "h100-sxm-80gb" in r.json()["suggestions"]


def test_search_and_validation_errors():
    r = client.post("/api/search", json={"model": "Qwen/Qwen3-8B", "chip": "l40s-48gb", "gpus": 2, "isl": 2000,
                                         "osl": 300, "tpot_ms": 60})
    assert r.status_code == 200 and r.json()["best"]["meets_slo"]
    assert client.post("/api/search", json={"model": "x", "chip": "l40s-48gb", "gpus": 0, "isl": 1,
                                            "osl": 1}).status_code == 422
    # targets met at a confidence: the margins it applied come back; a share outside 0.5-0.99 is a 422
    body = {"model": "Qwen/Qwen3-8B", "chip": "l40s-48gb", "gpus": 2, "isl": 2000, "osl": 300, "tpot_ms": 60}
    r = client.post("/api/search", json={**body, "confidence": 0.9})
    assert r.status_code == 200 and r.json()["margins"]["tpot_ms"] > 1.0 and r.json()["confidence"] == 0.9
    assert client.post("/api/search", json={**body, "confidence": 1.2}).status_code == 422


def test_dashboard_served():
    r = client.get("/")
    assert r.status_code == 200 and "/api/search" in r.text


def test_train_and_plan_routes():
    r = client.post("/api/train", json={"model": "meta-llama/Llama-3.1-8B", "chip": "h100-sxm-80gb", "gpus": 64,
                                        "tokens": 1e12, "seq_len": 8192})
    assert r.status_code == 200 and 0 < r.json()["mfu"] < 1
    r = client.post("/api/train", json={"model": "meta-llama/Llama-3.1-8B", "chip": "h100-sxm-80gb", "gpus": 64,
                                        "tokens": 1e12, "framework": "torchtitan"})
    assert r.status_code == 200 and r.json()["framework"] == "torchtitan"
    r = client.post("/api/train", json={"model": "meta-llama/Llama-3.1-8B", "chip": "h100-sxm-80gb", "gpus": 64,
                                        "tokens": 1e12, "framework": "megatorn"})
    assert r.status_code in (404, 422) and "megatron" in r.text
    r = client.post("/api/plan", json={"samples": 200})
    assert r.status_code == 200 and "runway" in r.json()
    bad = client.post("/api/plan", json={"scenario": {"stock": [{"chip": "h999", "count": 5}]}, "samples": 0})
    assert bad.status_code in (404, 422) and "error" in bad.json()


def test_estimate_under_a_request_rate_and_an_inline_trace_share_the_cli_request_model():
    base = {"model": "meta-llama/Llama-3.1-8B-Instruct", "chip": "h100-sxm-80gb"}
    r = client.post("/api/estimate", json={**base, "isl": 1000, "osl": 200, "request_rate": 5, "num_requests": 500})
    assert r.status_code == 200, r.text
    d = r.json()
    assert d["ttft_p50_ms"] <= d["ttft_p99_ms"] and d["backlog"]["requests"] == 0
    trace = [{"arrival_s": 0.1 * i, "input_len": 500, "output_len": 50} for i in range(100)]
    r = client.post("/api/estimate", json={**base, "trace": trace})
    assert r.status_code == 200, r.text
    assert r.json()["simulated_requests"] == 100
    # the same checks as the CLI: a trace with a rate, an unsorted trace, a bound on the work of one call
    assert client.post("/api/estimate", json={**base, "trace": trace, "request_rate": 3}).status_code in (400, 422)
    bad = [{"arrival_s": 1.0, "input_len": 5, "output_len": 5}, {"arrival_s": 0.5, "input_len": 5, "output_len": 5}]
    r = client.post("/api/estimate", json={**base, "trace": bad})
    assert r.status_code in (400, 422) and "sort" in r.text
    r = client.post("/api/estimate", json={**base, "isl": 100, "osl": 10, "request_rate": 5,
                                           "num_requests": 10_000_000})
    assert r.status_code == 422
