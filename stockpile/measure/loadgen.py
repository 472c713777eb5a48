"""Drive NVIDIA's AIPerf load generator against an OpenAI-compatible endpoint and read back its summary.

AIPerf runs as a subprocess from its own cached virtual environment (toolenv.py; `make tools` installs it,
and `ensure_loadgen()` does so on first use). One `run_load` call is one AIPerf profile run: synthetic
prompts of exactly `isl` tokens (counted with `tokenizer`, a local Hugging Face tokenizer folder or a hub id),
each asking for exactly `osl` output tokens (`max_tokens` plus `ignore_eos: true`, honoured by vLLM, SGLang
and llama.cpp's server), streamed from /v1/completions, either at a request rate (Poisson arrivals) or at a
fixed number of requests in flight, for `num_requests` requests.

Metric definitions are AIPerf's:
    ttft   time from sending the request to the first streamed token
    tpot   per request, (e2e - ttft) / (output tokens - 1)         AIPerf's "inter_token_latency"
    itl    the gaps between consecutive streamed chunks, all requests pooled   AIPerf's "inter_chunk_latency"
    e2e    time from sending the request to the last token        AIPerf's "request_latency"
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from stockpile.errors import InputError, StockpileError
from stockpile.measure import toolenv

GENERATOR = "aiperf"
AIPERF_VERSION = "0.13.0"
TOOL_NAME = f"{GENERATOR}-{AIPERF_VERSION}"

Mode = Literal["request_rate", "concurrency"]


class MeasureError(StockpileError):
    """A measurement could not be made (endpoint unreachable, every request failed, the generator crashed)."""


@dataclass(frozen=True)
class LatencyStats:
    """Mean and percentiles of one latency, in milliseconds; None where the generator gave none."""

    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None


@dataclass(frozen=True)
class LoadResult:
    """One load point measured by the generator: what was asked, what completed, throughput and latencies."""

    generator: str                 # "aiperf"
    generator_version: str         # as the generator reported it
    endpoint: str
    model: str                     # the name sent in requests (served model name)
    isl: int                       # requested input tokens per request
    osl: int                       # requested output tokens per request
    mode: Mode
    load: float                    # requests per second (request_rate) or requests in flight (concurrency)
    num_requests: int              # requests asked for
    completed: int                 # requests that returned a full response
    failed: int                    # requests that errored
    duration_s: float              # the measurement window the throughputs divide by (AIPerf's start to end)
    input_tokens_mean: float       # per completed request, counted with the tokenizer
    output_tokens_mean: float
    output_tokens_per_s: float
    total_tokens_per_s: float
    requests_per_s: float
    ttft_ms: LatencyStats
    tpot_ms: LatencyStats
    itl_ms: LatencyStats
    e2e_ms: LatencyStats
    first_error: str | None = None  # the first failed request's error (HTTP status and the server's message)

    def as_row(self) -> dict[str, Any]:
        """A flat dict (latencies as ttft_ms_mean, ttft_ms_p50, ...) for a CSV row."""
        row: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, LatencyStats):
                row.update({f"{f.name}_{k}": v for k, v in asdict(value).items()})
            else:
                row[f.name] = value
        return row


# ---------------------------------------------------------------------------------------------- environment

def constraints_file() -> Path:
    """Every package of AIPerf's environment pinned (shipped data; installs are constraint-checked)."""
    return Path(str(resources.files("stockpile") / "data" / "tools" / f"{TOOL_NAME}-constraints.txt"))


def aiperf_path() -> Path:
    return toolenv.tool_dir(TOOL_NAME) / "bin" / "aiperf"


def loadgen_installed() -> bool:
    return toolenv.is_installed(TOOL_NAME) and aiperf_path().is_file()


def ensure_loadgen(progress: toolenv.Progress | None = toolenv._stderr) -> Path:
    """AIPerf's executable, installing aiperf==AIPERF_VERSION into its own cached environment the first time
    (3 to 5 minutes and 1.2 GB; no PyTorch)."""
    if not loadgen_installed():
        toolenv.install_venv(TOOL_NAME, [f"aiperf=={AIPERF_VERSION}"], constraints=constraints_file(),
                             progress=progress)
    path = aiperf_path()
    if not path.is_file():
        raise toolenv.ToolError(f"{path} is missing after installing {TOOL_NAME}; delete "
                                f"{toolenv.tool_dir(TOOL_NAME)} and run `make tools` again")
    return path


# ---------------------------------------------------------------------------------------------- running

def _check_args(isl: int, osl: int, request_rate: float | None, concurrency: int | None,
                num_requests: int) -> tuple[Mode, float]:
    if (request_rate is None) == (concurrency is None):
        raise InputError("load", "give exactly one of request_rate or concurrency")
    if request_rate is not None and not (request_rate > 0 and math.isfinite(request_rate)):
        raise InputError("request_rate", f"must be a positive number of requests per second, got {request_rate}")
    if concurrency is not None and concurrency < 1:
        raise InputError("concurrency", f"must be at least 1, got {concurrency}")
    if isl < 1:
        raise InputError("isl", f"must be at least 1 token, got {isl}")
    if osl < 2:
        raise InputError("osl", f"must be at least 2 tokens (time per output token needs two), got {osl}")
    if num_requests < 1:
        raise InputError("num_requests", f"must be at least 1, got {num_requests}")
    if request_rate is not None:
        return "request_rate", float(request_rate)
    assert concurrency is not None
    return "concurrency", float(concurrency)


def _base_url(endpoint: str) -> str:
    """The server's base URL: scheme and host, with a trailing /v1 (or /v1/...) removed."""
    url = endpoint.strip()
    if "://" not in url:
        url = "http://" + url
    url = url.rstrip("/")
    try:
        parsed = urllib.parse.urlsplit(url)
        host, _ = parsed.hostname, parsed.port        # a malformed IPv6 literal or port raises here
    except ValueError as exc:
        raise InputError("endpoint", f"'{endpoint}' is not a URL ({exc}; e.g. http://127.0.0.1:8000)") from None
    if not host:
        raise InputError("endpoint", f"'{endpoint}' is not a URL (e.g. http://127.0.0.1:8000)")
    path = re.sub(r"/v1(/.*)?$", "", parsed.path)
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, path, "", ""))


def check_endpoint(base_url: str, model: str, timeout_s: float = 10.0) -> str:
    """Fail fast, with the reason, when nothing answers at `base_url` or it does not serve `model`; returns the
    server's `Server` header ('' when it sends none)."""
    try:
        with urllib.request.urlopen(f"{base_url}/v1/models", timeout=timeout_s) as resp:
            body = resp.read()
            server = resp.headers.get("Server", "")
    except urllib.error.HTTPError as e:
        return str(e.headers.get("Server", ""))  # it answers; one without /v1/models can still serve completions
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise MeasureError(f"endpoint {base_url} is unreachable ({reason}); start the server or fix --endpoint "
                           "(the base URL, e.g. http://127.0.0.1:8000)") from None
    try:
        served = [m.get("id") for m in json.loads(body).get("data", [])]
    except (ValueError, AttributeError):
        return server
    if served and model not in served:
        raise MeasureError(f"endpoint {base_url} does not serve model '{model}' (it serves: {', '.join(map(str, served))}); "
                           "pass the served name (stockpile measure: --served-model-name)")
    return server


_PROGRESS = re.compile(r"Profiling: +(\d+)/(\d+)")
_ERROR_LINE = re.compile(r"\bERROR\b\s+(.*?)(?:\s+\([\w.]+:\d+\))?$")


class _Output:
    """Reads the generator's merged stdout/stderr (tqdm redraws with \\r), keeping the tail and the progress."""

    def __init__(self, stream: Any, on_progress: Callable[[float], None] | None):
        self.tail: deque[str] = deque(maxlen=200)
        self.errors: list[str] = []
        self.done = 0
        self._stream = stream
        self._on_progress = on_progress
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf = ""
        while True:
            chunk = self._stream.read1(65536) if hasattr(self._stream, "read1") else self._stream.read(65536)
            if not chunk:
                break
            buf += chunk.decode("utf-8", "replace")
            *lines, buf = re.split(r"[\r\n]", buf)
            for line in lines:
                self._line(line)
        if buf:
            self._line(buf)

    def _line(self, line: str) -> None:
        line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
        if not line:
            return
        m = _PROGRESS.search(line)
        if m:
            done, total = int(m.group(1)), int(m.group(2))
            if done > self.done and total > 0:
                self.done = done
                if self._on_progress:
                    self._on_progress(min(done / total, 1.0))
            return
        self.tail.append(line)
        e = _ERROR_LINE.search(line)
        if e and len(self.errors) < 20:
            self.errors.append(e.group(1))

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)


def _command(aiperf: Path, base_url: str, served: str, tokenizer: str, isl: int, osl: int, mode: Mode,
             load: float, num_requests: int, seed: int, warmup_requests: int, out_dir: Path,
             reuse_connections: bool = True) -> list[str]:
    cmd = [str(aiperf), "profile", "--model", served, "--tokenizer", tokenizer, "--url", base_url,
           "--endpoint-type", "completions", "--streaming",
           "--isl", str(isl), "--isl-stddev", "0", "--osl", str(osl), "--osl-stddev", "0",
           "--extra-inputs", "ignore_eos:true",
           "--request-count", str(num_requests), "--random-seed", str(seed),
           "--output-artifact-dir", str(out_dir), "--ui-type", "simple",
           "--no-server-metrics", "--no-gpu-telemetry"]
    if mode == "request_rate":
        cmd += ["--request-rate", repr(load), "--arrival-pattern", "poisson"]
    else:
        cmd += ["--concurrency", str(int(load))]
    if warmup_requests:
        cmd += ["--warmup-request-count", str(warmup_requests)]
    if not reuse_connections:
        cmd += ["--connection-reuse-strategy", "never"]
    return cmd


def _environment(tokenizer: str, out_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env["AIPERF_DATASET_MMAP_BASE_PATH"] = str(out_dir)   # its scratch files go with the run, not into /tmp
    env.setdefault("PYTHONUNBUFFERED", "1")
    # AIPerf keeps idle pooled connections for 300 s, but servers drop them sooner (uvicorn under vLLM and
    # SGLang, and llama.cpp's server, after 5 s): reusing a dropped one fails the request ("Server disconnected",
    # "Can not write request body"). Idle connections are let go before the servers' 5 s instead.
    env.setdefault("AIPERF_HTTP_KEEPALIVE_TIMEOUT", "4")
    if Path(tokenizer).is_dir():
        # AIPerf 0.13 looks a tokenizer up in the hub cache when HF_HUB_OFFLINE is set, even a local folder,
        # and fails; a local folder needs no hub, so these are dropped for the subprocess
        env.pop("HF_HUB_OFFLINE", None)
        env.pop("TRANSFORMERS_OFFLINE", None)
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the generator and the services it started (its own process group)."""
    for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue


def run_load(endpoint: str, model: str, isl: int, osl: int, *, request_rate: float | None = None,
             concurrency: int | None = None, num_requests: int, tokenizer: str | Path | None,
             served_model_name: str | None = None, seed: int = 0,
             on_progress: Callable[[float], None] | None = None, timeout_s: float | None = None,
             warmup_requests: int = 0, reuse_connections: bool | None = None, install: bool = True,
             artifacts_dir: str | Path | None = None) -> LoadResult:
    """Measure one load point with AIPerf; see the module docstring for what is sent and measured.

    endpoint: the server's base URL (http://host:port; a trailing /v1 is accepted). model: the model's id,
    which is also the tokenizer when `tokenizer` is None and the name sent in requests when
    `served_model_name` is None. on_progress gets the completed fraction (0..1), from a reader thread, each
    time the generator's progress bar moves (so it may be called rarely on short runs). timeout_s bounds the whole
    run. reuse_connections: keep-alive connections (AIPerf's pool) or a new connection for every request
    (--connection-reuse-strategy never); by default new ones for llama.cpp's server, which closes a connection
    after each streamed response while advertising keep-alive (a client reusing it fails about one request in a
    hundred), pooled for the rest (vLLM, SGLang). install=False raises instead of installing a missing generator. artifacts_dir keeps AIPerf's own
    exports (profile_export_aiperf.json, per-request profile_export.jsonl, logs); by default they are removed.
    """
    mode, load = _check_args(isl, osl, request_rate, concurrency, num_requests)
    base_url = _base_url(endpoint)
    served = served_model_name or model
    tok = str(tokenizer) if tokenizer is not None else model
    if Path(tok).expanduser().is_dir():
        tok = str(Path(tok).expanduser().resolve())
    elif tok.startswith((".", "/", "~")) or isinstance(tokenizer, Path):
        raise InputError("tokenizer", f"no folder '{tok}' (give a local Hugging Face tokenizer folder with "
                                      "tokenizer.json, or a hub id such as Qwen/Qwen3-8B)")
    if install:
        aiperf = ensure_loadgen()
    elif loadgen_installed():
        aiperf = aiperf_path()
    else:
        raise MeasureError(f"the load generator ({GENERATOR} {AIPERF_VERSION}) is not installed under "
                           f"{toolenv.tools_root()}; run `make tools` (or stockpile.measure.loadgen.ensure_loadgen())")
    server = check_endpoint(base_url, served)
    if reuse_connections is None:
        reuse_connections = "llama.cpp" not in server.lower()

    keep = Path(artifacts_dir) if artifacts_dir is not None else None
    scratch = Path(tempfile.mkdtemp(prefix="stockpile-aiperf-"))
    out_dir = keep if keep is not None else scratch / "artifacts"
    try:
        cmd = _command(aiperf, base_url, served, tok, isl, osl, mode, load, num_requests, seed,
                       warmup_requests, out_dir, reuse_connections)
        if on_progress:
            on_progress(0.0)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=_environment(tok, scratch), cwd=scratch, start_new_session=True)
        assert proc.stdout is not None
        output = _Output(proc.stdout, on_progress)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop(proc)
            raise MeasureError(f"{GENERATOR} did not finish {num_requests} requests within {timeout_s:.0f} s "
                               f"against {base_url}; give a longer timeout or fewer requests") from None
        except BaseException:
            _stop(proc)
            raise
        output.join()
        summary = out_dir / "profile_export_aiperf.json"
        first_error = _first_request_error(out_dir / "profile_export.jsonl")
        if proc.returncode != 0 or not summary.is_file():
            raise MeasureError(_failure_message(proc.returncode, output, base_url, tok, first_error))
        result = parse_summary(json.loads(summary.read_text()), endpoint=base_url, model=served, isl=isl, osl=osl,
                               mode=mode, load=load, num_requests=num_requests)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if result.completed == 0:
        raise MeasureError(f"all {num_requests} requests to {base_url} failed ({first_error or 'no error recorded'})")
    if result.failed:
        result = replace(result, first_error=first_error)
    if on_progress:
        on_progress(1.0)
    return result


def _first_request_error(records: Path) -> str | None:
    """The first failed request in AIPerf's per-request export, as 'HTTP 400: <the server's message>'."""
    try:
        lines = records.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            err = json.loads(line).get("error")
        except ValueError:
            continue
        if not err:
            continue
        message = str(err.get("message", ""))
        try:   # OpenAI-style servers wrap the reason in {"error": {"message": ...}}
            inner = json.loads(message)
            message = str(inner.get("error", inner).get("message", message))
        except (ValueError, AttributeError):
            pass
        code = err.get("code")
        return (f"HTTP {code}: " if code else "") + message[:300]
    return None


def _failure_message(rc: int | None, output: _Output, base_url: str, tokenizer: str,
                     first_error: str | None = None) -> str:
    text = "\n".join(output.tail)
    m = re.search(r"All (\d+) inference request\(s\) failed", text)
    first = first_error or next((e for e in output.errors if "request" in e.lower() or "aiohttp" in e.lower()),
                                output.errors[0] if output.errors else "")
    if m:
        return (f"all {m.group(1)} requests to {base_url} failed ({first[:300]}); check the server's limits "
                "(context length) and that it serves /v1/completions with streaming under this model name")
    if "tokenizer" in text.lower() and "fail" in text.lower():
        tok_err = next((e for e in output.errors if "tokenizer" in e.lower()), first)
        return (f"{GENERATOR} could not load the tokenizer '{tokenizer}' ({tok_err[:300]}); give a local Hugging "
                "Face tokenizer folder (tokenizer.json + tokenizer_config.json) or a hub id that is cached")
    last = "\n".join(list(output.tail)[-15:])
    return f"{GENERATOR} exited with status {rc} without results; its last output:\n{last}"


# ---------------------------------------------------------------------------------------------- parsing

_SCALE_TO_MS = {"ms": 1.0, "s": 1000.0, "sec": 1000.0, "us": 1e-3, "ns": 1e-6}


def _latency(summary: dict[str, Any], tag: str) -> LatencyStats:
    m = summary.get(tag)
    if not isinstance(m, dict):
        return LatencyStats(None, None, None, None)
    scale = _SCALE_TO_MS.get(str(m.get("unit", "ms")), 1.0)

    def get(key: str) -> float | None:
        v = m.get(key)
        return float(v) * scale if isinstance(v, (int, float)) and math.isfinite(v) else None

    return LatencyStats(get("avg"), get("p50"), get("p90"), get("p99"))


def _scalar(summary: dict[str, Any], tag: str, default: float | None = None) -> float:
    m = summary.get(tag)
    v = m.get("avg") if isinstance(m, dict) else None
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    if default is None:
        raise MeasureError(f"{GENERATOR}'s summary lacks '{tag}'; the pinned version {AIPERF_VERSION} writes it, "
                           "so the installed generator is not the pinned one: run `make tools`")
    return default


def _window_s(summary: dict[str, Any]) -> float:
    """The profiling window AIPerf divides by for its throughputs (its start_time to end_time); its
    benchmark_duration (first request sent to last response) is a little shorter. Falls back to the latter."""
    try:
        start = dt.datetime.fromisoformat(str(summary["start_time"]))
        end = dt.datetime.fromisoformat(str(summary["end_time"]))
    except (KeyError, ValueError):
        return _scalar(summary, "benchmark_duration")
    window = (end - start).total_seconds()
    return window if window > 0 else _scalar(summary, "benchmark_duration")


def parse_summary(summary: dict[str, Any], *, endpoint: str, model: str, isl: int, osl: int, mode: Mode,
                  load: float, num_requests: int) -> LoadResult:
    """A LoadResult from AIPerf's profile_export_aiperf.json."""
    completed = int(_scalar(summary, "request_count", 0.0))
    failed = int(_scalar(summary, "error_request_count", 0.0))
    if completed == 0:
        return LoadResult(GENERATOR, str(summary.get("aiperf_version", AIPERF_VERSION)), endpoint, model, isl, osl,
                          mode, load, num_requests, 0, failed or num_requests, _scalar(summary, "benchmark_duration", 0.0),
                          0.0, 0.0, 0.0, 0.0, 0.0, *(LatencyStats(None, None, None, None),) * 4)
    return LoadResult(
        generator=GENERATOR,
        generator_version=str(summary.get("aiperf_version", AIPERF_VERSION)),
        endpoint=endpoint, model=model, isl=isl, osl=osl, mode=mode, load=load, num_requests=num_requests,
        completed=completed, failed=failed,
        duration_s=_window_s(summary),
        input_tokens_mean=_scalar(summary, "input_sequence_length"),
        output_tokens_mean=_scalar(summary, "output_sequence_length"),
        output_tokens_per_s=_scalar(summary, "output_token_throughput"),
        total_tokens_per_s=_scalar(summary, "total_token_throughput"),
        requests_per_s=_scalar(summary, "request_throughput"),
        ttft_ms=_latency(summary, "time_to_first_token"),
        tpot_ms=_latency(summary, "inter_token_latency"),
        itl_ms=_latency(summary, "inter_chunk_latency"),
        e2e_ms=_latency(summary, "request_latency"),
    )
