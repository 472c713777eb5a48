"""A real OpenAI-compatible server for the measure tests: llama.cpp's llama-server serving the tiny model of
tiny_model.py on the CPU, on a free loopback port.

The server binary is built once by `make tools` (stockpile.measure.toolenv.ensure_llama_server) into the
tools cache. When it is missing the tests skip, saying so, unless STOCKPILE_REQUIRE_TOOLS is set (as `make test`
does), in which case they fail.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from stockpile.measure import toolenv

from . import tiny_model

SERVED_NAME = "tiny-llama"
CONTEXT = 8192     # shared by PARALLEL slots: 2048 tokens (prompt + output) per request
PARALLEL = 4


@dataclass(frozen=True)
class TinyServer:
    url: str           # base URL, e.g. http://127.0.0.1:41234 (the OpenAI API is under /v1)
    model: str         # the served model name to put in requests
    model_dir: Path    # config.json + tokenizer files (a Hugging Face folder) and model.gguf
    log: Path          # the server's stdout/stderr


def require_tool(installed: bool, what: str) -> None:
    """Skip (or fail, under STOCKPILE_REQUIRE_TOOLS) when a cached tool is missing."""
    if installed:
        return
    msg = f"{what} is not in the tools cache {toolenv.tools_root()}: run `make tools`"
    if os.environ.get("STOCKPILE_REQUIRE_TOOLS"):
        pytest.fail(msg + " (STOCKPILE_REQUIRE_TOOLS is set, so this fails instead of skipping)")
    pytest.skip(msg)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200 and json.loads(resp.read()).get("status") == "ok"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def tiny_server(workdir: Path, *, threads: int = 1, start_timeout_s: float = 60.0) -> Iterator[TinyServer]:
    """Write the tiny model into `workdir`, start llama-server on it, wait until healthy, stop it on exit."""
    binary = toolenv.llama_server_path()
    require_tool(toolenv.is_installed(toolenv.LLAMA_SERVER) and binary.is_file(),
                 f"llama.cpp's server ({toolenv.LLAMA_SERVER})")
    model_dir = workdir / "tiny-llama"
    gguf_path = tiny_model.write_model(model_dir)
    log = workdir / "llama-server.log"
    last_error = ""
    for _attempt in range(3):   # a port taken between choosing and binding: try another
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [str(binary), "-m", str(gguf_path), "--alias", SERVED_NAME, "--host", "127.0.0.1",
               "--port", str(port), "-c", str(CONTEXT), "-np", str(PARALLEL), "-t", str(threads),
               "--no-webui"]
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline and proc.poll() is None and not _healthy(url):
            time.sleep(0.1)
        if proc.poll() is None and _healthy(url):
            try:
                yield TinyServer(url=url, model=SERVED_NAME, model_dir=model_dir, log=log)
            finally:
                _stop(proc)
            return
        _stop(proc)
        last_error = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    raise RuntimeError(f"llama-server did not become healthy; its log ends:\n{last_error}")
