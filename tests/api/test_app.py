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


def test_dashboard_served():
    r = client.get("/")
    assert r.status_code == 200 and "/api/search" in r.text


def test_train_and_plan_routes():
    r = client.post("/api/train", json={"model": "meta-llama/Llama-3.1-8B", "chip": "h100-sxm-80gb", "gpus": 64,
                                        "tokens": 1e12, "seq_len": 8192})
    assert r.status_code == 200 and 0 < r.json()["mfu"] < 1
    r = client.post("/api/plan", json={"samples": 200})
    assert r.status_code == 200 and "runway" in r.json()
    bad = client.post("/api/plan", json={"scenario": {"stock": [{"chip": "h999", "count": 5}]}, "samples": 0})
    assert bad.status_code in (404, 422) and "error" in bad.json()
