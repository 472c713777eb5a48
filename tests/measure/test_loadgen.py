"""run_load drives the real AIPerf against a real llama.cpp server running a tiny model on the CPU."""
from __future__ import annotations

import http.client
import json
import socket
import urllib.request

import pytest

from stockpile.errors import InputError, StockpileError
from stockpile.measure import loadgen
from stockpile.measure.loadgen import LatencyStats, LoadResult, MeasureError, run_load

from .cpu_server import TinyServer, require_tool

ISL, OSL = 32, 16


@pytest.fixture(scope="module")
def aiperf() -> None:
    require_tool(loadgen.loadgen_installed(), f"the load generator ({loadgen.TOOL_NAME})")


def _complete(server: TinyServer, **extra: object) -> dict:
    body = json.dumps({"model": server.model, "prompt": "Hello there", "max_tokens": OSL, **extra}).encode()
    req = urllib.request.Request(f"{server.url}/v1/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_tiny_server_needs_ignore_eos_for_full_length(cpu_server: TinyServer) -> None:
    """The tiny model ends at once unless the request carries ignore_eos, so full-length outputs in the
    load tests show that the generator sends it."""
    assert _complete(cpu_server)["usage"]["completion_tokens"] < OSL
    out = _complete(cpu_server, ignore_eos=True)
    assert out["usage"]["completion_tokens"] == OSL
    assert len(out["choices"][0]["text"].encode()) == OSL          # one byte per token: letters only
    assert out["usage"]["prompt_tokens"] == len(b"Hello there")


def _check(r: LoadResult, n: int) -> None:
    assert r.generator == "aiperf" and r.generator_version == loadgen.AIPERF_VERSION
    assert r.completed == n and r.failed == 0 and r.num_requests == n
    assert r.output_tokens_mean == OSL
    assert abs(r.input_tokens_mean - ISL) <= 2
    for name in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        s: LatencyStats = getattr(r, name)
        assert None not in (s.mean, s.p50, s.p90, s.p99), name
        assert 0 <= s.p50 <= s.p90 <= s.p99, (name, s)      # type: ignore[operator]
    assert r.ttft_ms.mean < r.e2e_ms.mean and r.ttft_ms.p50 < r.e2e_ms.p50     # type: ignore[operator]
    assert r.tpot_ms.mean > 0                                                  # type: ignore[operator]
    # throughputs are tokens (requests) over the measurement window
    assert r.duration_s > 0
    assert r.output_tokens_per_s == pytest.approx(n * OSL / r.duration_s, rel=0.02)
    assert r.requests_per_s == pytest.approx(n / r.duration_s, rel=0.02)
    assert r.total_tokens_per_s == pytest.approx(n * (OSL + r.input_tokens_mean) / r.duration_s, rel=0.02)
    row = r.as_row()
    assert row["ttft_ms_p90"] == r.ttft_ms.p90 and row["mode"] == r.mode and "ttft_ms" not in row


def test_fixed_concurrency(cpu_server: TinyServer, aiperf: None) -> None:
    seen: list[float] = []
    r = run_load(cpu_server.url, "test/tiny-llama", ISL, OSL, concurrency=2, num_requests=12,
                 tokenizer=cpu_server.model_dir, served_model_name=cpu_server.model, on_progress=seen.append,
                 timeout_s=240, install=False)
    assert r.mode == "concurrency" and r.load == 2
    assert r.model == cpu_server.model
    _check(r, 12)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen)


def test_fixed_request_rate(cpu_server: TinyServer, aiperf: None, tmp_path) -> None:
    r = run_load(cpu_server.url + "/v1", cpu_server.model, ISL, OSL, request_rate=20.0, num_requests=12,
                 tokenizer=str(cpu_server.model_dir), seed=3, timeout_s=240, install=False,
                 artifacts_dir=tmp_path / "aiperf")
    assert r.mode == "request_rate" and r.load == 20.0 and r.endpoint == cpu_server.url
    _check(r, 12)
    summary = json.loads((tmp_path / "aiperf" / "profile_export_aiperf.json").read_text())
    assert summary["input_config"]["endpoint"]["connection_reuse"] == "never"     # llama.cpp recognised
    assert summary["input_config"]["endpoint"]["extra"] == {"ignore_eos": True}
    # Poisson arrivals at 20/s: 12 requests take about 0.55 s to send; far longer means the rate was ignored
    assert r.duration_s < 5


def test_llama_server_closes_streamed_connections(cpu_server: TinyServer) -> None:
    """Why run_load opens a new connection per request against llama.cpp's server (recognised by its Server
    header): it closes the connection after a streamed response although it advertises keep-alive."""
    assert "llama.cpp" in loadgen.check_endpoint(cpu_server.url, cpu_server.model)
    host, port = cpu_server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps({"model": cpu_server.model, "prompt": "Hi", "max_tokens": 2, "stream": True})
    conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and b"[DONE]" in resp.read()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
        conn.getresponse().read()
    conn.close()


def test_unreachable_endpoint_is_a_clear_error(aiperf: None) -> None:
    with socket.socket() as s:                       # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(MeasureError, match="unreachable.*start the server"):
        run_load(f"http://127.0.0.1:{port}", "m", ISL, OSL, concurrency=1, num_requests=1, tokenizer=None,
                 install=False)


def test_unknown_served_model_is_a_clear_error(cpu_server: TinyServer, aiperf: None) -> None:
    with pytest.raises(MeasureError, match="does not serve model 'nope'.*tiny-llama"):
        run_load(cpu_server.url, "nope", ISL, OSL, concurrency=1, num_requests=1,
                 tokenizer=cpu_server.model_dir, install=False)


def test_all_requests_failing_is_a_clear_error(cpu_server: TinyServer, aiperf: None) -> None:
    """Prompts longer than the server's per-request context: every request gets HTTP 400, and the error
    carries the server's own reason."""
    with pytest.raises(MeasureError, match=r"all 2 requests .* failed \(HTTP 400: .*context"):
        run_load(cpu_server.url, cpu_server.model, 3000, OSL, concurrency=2, num_requests=2,
                 tokenizer=cpu_server.model_dir, timeout_s=240, install=False)


@pytest.mark.parametrize("kwargs, field", [
    (dict(), "load"),
    (dict(concurrency=2, request_rate=1.0), "load"),
    (dict(concurrency=0), "concurrency"),
    (dict(request_rate=-1.0), "request_rate"),
    (dict(concurrency=1, isl=0), "isl"),
    (dict(concurrency=1, osl=1), "osl"),
    (dict(concurrency=1, num_requests=0), "num_requests"),
    (dict(concurrency=1, tokenizer="/no/such/folder"), "tokenizer"),
])
def test_bad_arguments_name_the_field(kwargs: dict, field: str) -> None:
    args = dict(isl=ISL, osl=OSL, num_requests=4, tokenizer=None) | kwargs
    with pytest.raises(InputError) as e:
        run_load("http://127.0.0.1:9", "m", install=False, **args)   # type: ignore[arg-type]
    assert e.value.field == field
    assert isinstance(e.value, StockpileError)


def test_missing_generator_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("STOCKPILE_TOOL_ENVS", str(tmp_path / "empty"))
    with pytest.raises(MeasureError, match="not installed.*make tools"):
        run_load("http://127.0.0.1:9", "m", ISL, OSL, concurrency=1, num_requests=1, tokenizer=None, install=False)


def test_parse_summary_with_failures() -> None:
    """Counts and missing metrics from AIPerf's summary: failed requests are counted, absent stats are None."""
    summary = {"aiperf_version": "0.13.0", "request_count": {"avg": 3}, "error_request_count": {"avg": 1},
               "benchmark_duration": {"unit": "sec", "avg": 2.0}, "input_sequence_length": {"avg": 10},
               "output_sequence_length": {"avg": 5}, "output_token_throughput": {"avg": 7.5},
               "total_token_throughput": {"avg": 22.5}, "request_throughput": {"avg": 1.5},
               "time_to_first_token": {"unit": "ms", "avg": 10, "p50": 9, "p90": 12, "p99": 13},
               "request_latency": {"unit": "s", "avg": 0.05, "p50": 0.04, "p90": 0.06, "p99": 0.07}}
    r = loadgen.parse_summary(summary, endpoint="u", model="m", isl=10, osl=5, mode="concurrency", load=1,
                              num_requests=4)
    assert (r.completed, r.failed) == (3, 1)
    assert r.e2e_ms == LatencyStats(50.0, 40.0, 60.0, 70.0)
    assert r.tpot_ms == LatencyStats(None, None, None, None)
    assert r.duration_s == 2.0            # no window given: the benchmark duration
    windowed = summary | {"start_time": "2026-12-02T16:49:10.500000", "end_time": "2026-12-02T16:49:12.500000"}
    assert loadgen.parse_summary(windowed, endpoint="u", model="m", isl=10, osl=5, mode="concurrency", load=1,
                                 num_requests=4).duration_s == pytest.approx(2.0)


@pytest.mark.parametrize("endpoint", ["http://[::1", "http://localhost:99999", "http://", "://"])
def test_a_malformed_endpoint_is_refused_with_the_field(endpoint):
    """Fuzzing found 'http://[::1' raising Python's ValueError out of urllib: it is the endpoint's fault."""
    from stockpile.measure.loadgen import _base_url
    with pytest.raises(InputError, match="endpoint"):
        _base_url(endpoint)
