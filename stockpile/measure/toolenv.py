"""Cached external tools that `stockpile measure` drives as subprocesses, kept out of Stockpile's own dependencies.

Each tool lives in its own folder under the tools cache (platformdirs' user cache dir for "stockpile", then
tools/; the environment variable STOCKPILE_TOOL_ENVS overrides the whole path), named <tool>-<version>, and
counts as installed only once its marker file `.complete` exists, written last. A file lock serialises two
processes that install the same tool at once.

    aiperf-<version>/         a virtual environment holding NVIDIA's AIPerf load generator (see loadgen.py)
    llama-server-<version>/   llama.cpp's OpenAI-compatible server, built from the llama.cpp sources vendored
                              in the llama-cpp-python sdist of that version: a small real server that runs a tiny
                              model on the CPU, for the measure tests and for trying `stockpile measure` locally
"""
from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from stockpile.errors import StockpileError

ENV_VAR = "STOCKPILE_TOOL_ENVS"
MARKER = ".complete"

# llama.cpp as vendored in this llama-cpp-python release (an sdist on PyPI, fetched with pip)
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
LLAMA_SERVER = f"llama-server-{LLAMA_CPP_PYTHON_VERSION}"
_LLAMA_CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF",
    # portable (no -march=native): the cache may move between machines; the tiny test model needs no speed
    "-DGGML_NATIVE=OFF",
    # nothing fetched at build time: no prebuilt web UI, no curl or TLS
    "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_APP=OFF",
]

Progress = Callable[[str], None]


class ToolError(StockpileError):
    """An external tool is missing, failed to install, or failed to run; the message says how to fix it."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def tools_root() -> Path:
    """Where the tool folders live: $STOCKPILE_TOOL_ENVS, else <user cache dir>/stockpile/tools."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    import platformdirs
    return Path(platformdirs.user_cache_dir("stockpile", appauthor=False)) / "tools"


def tool_dir(name: str) -> Path:
    return tools_root() / name


def is_installed(name: str) -> bool:
    return (tool_dir(name) / MARKER).is_file()


@contextmanager
def _locked(name: str) -> Iterator[None]:
    root = tools_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: list[str], what: str, fix: str, *, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    """Run an install step; on failure raise ToolError with the last lines of its output."""
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except FileNotFoundError as e:
        raise ToolError(f"{what}: '{cmd[0]}' not found ({fix})") from e
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise ToolError(f"{what} failed (exit {proc.returncode}); {fix}\n{tail}")


def install_venv(name: str, requirements: list[str], *, constraints: Path | None = None,
                 progress: Progress | None = _stderr, python: str | None = None) -> Path:
    """A virtual environment <tools>/<name> holding `requirements` (pinned by the caller); returns its folder.

    Built in place under a lock; the marker is written last, so an interrupted install is redone next time."""
    dest = tool_dir(name)
    if is_installed(name):
        return dest
    with _locked(name):
        if is_installed(name):
            return dest
        if dest.exists():
            shutil.rmtree(dest)
        t0 = time.monotonic()
        if progress:
            progress(f"installing {', '.join(requirements)} into {dest} (once; a few minutes)")
        base = python or getattr(sys, "_base_executable", None) or sys.executable
        fix = "check the network reaches PyPI and that python's venv module is installed"
        _run([base, "-m", "venv", str(dest)], f"creating the virtual environment {dest}", fix)
        pip = [str(dest / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        if constraints is not None:
            pip += ["-c", str(constraints)]
        _run(pip + requirements, f"pip install {' '.join(requirements)}", fix)
        (dest / MARKER).write_text(f"{' '.join(requirements)}\n")
        if progress:
            progress(f"installed {name} in {time.monotonic() - t0:.0f} s")
    return dest


def llama_server_path() -> Path:
    return tool_dir(LLAMA_SERVER) / "bin" / "llama-server"


def ensure_llama_server(progress: Progress | None = _stderr, jobs: int | None = None) -> Path:
    """llama.cpp's `llama-server` binary, built once from the llama-cpp-python sdist's vendored sources.

    Needs pip (to fetch the sdist from PyPI), cmake and a C++ compiler; about 14 minutes on two cores."""
    binary = llama_server_path()
    if is_installed(LLAMA_SERVER) and binary.is_file():
        return binary
    with _locked(LLAMA_SERVER):
        if is_installed(LLAMA_SERVER) and binary.is_file():
            return binary
        for tool in ("cmake", "c++"):
            if shutil.which(tool) is None:
                raise ToolError(f"building llama-server needs '{tool}' on PATH (on Debian: apt-get install cmake g++)")
        dest = tool_dir(LLAMA_SERVER)
        t0 = time.monotonic()
        if progress:
            progress(f"building llama.cpp's llama-server (llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} sources) "
                     f"into {dest} (once; about 14 minutes on 2 cores)")
        with tempfile.TemporaryDirectory(prefix="stockpile-llama-") as tmp:
            work = Path(tmp)
            _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                  "--disable-pip-version-check", "-d", str(work), f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}"],
                 "downloading the llama-cpp-python sdist", "check the network reaches PyPI")
            sdist = next(work.glob("llama_cpp_python-*.tar.gz"))
            prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"
            with tarfile.open(sdist) as tar:
                members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
                tar.extractall(work, members=members, filter="data")
            src = work / prefix
            build = work / "build"
            fix = "see the compiler output above; cmake >= 3.14 and a C++17 compiler are needed"
            _run(["cmake", "-S", str(src), "-B", str(build), *_LLAMA_CMAKE_FLAGS], "configuring llama.cpp", fix)
            n = jobs or os.cpu_count() or 2
            _run(["cmake", "--build", str(build), "--target", "llama-server", "-j", str(n)],
                 "building llama-server", fix)
            if dest.exists():
                shutil.rmtree(dest)
            (dest / "bin").mkdir(parents=True)
            shutil.copy2(build / "bin" / "llama-server", dest / "bin" / "llama-server")
        (dest / MARKER).write_text(f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}\n")
        if progress:
            progress(f"built llama-server in {time.monotonic() - t0:.0f} s")
    return binary
