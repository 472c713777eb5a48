"""A real OpenAI-compatible server on this CPU, for trying the measure -> validate -> calibrate loop anywhere.

    make tools                      # once: AIPerf and llama.cpp's server into the tools cache
    .venv/bin/python bench/cpu_server.py [--dir DIR] [--port 8089]

Writes a tiny Llama (random weights, byte-level tokenizer; the same generator the tests use) and this host's
CPU as a chip file (figures measured now) into DIR (default ./cpu-server), prints the `stockpile measure`
command to run against it, and serves until Ctrl-C."""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stockpile.measure import toolenv  # noqa: E402
from tests.measure import tiny_model  # noqa: E402
from tests.measure.cpu_server import CONTEXT, PARALLEL, SERVED_NAME  # noqa: E402
from tests.measure.host_chip import CHIP_ID, write_host_chip  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("cpu-server"))
    ap.add_argument("--port", type=int, default=8089)
    args = ap.parse_args()
    binary = toolenv.llama_server_path()
    if not binary.is_file():
        print(f"llama-server is not built yet ({binary}); run `make tools` first", file=sys.stderr)
        return 1
    work = args.dir.resolve()
    model_dir = work / "tiny-llama"
    gguf = tiny_model.write_model(model_dir)
    chip = write_host_chip(work / "host.yaml")
    measure = ["stockpile", "measure", "--endpoint", f"http://127.0.0.1:{args.port}/v1",
               "--model", str(model_dir / "config.json"), "--served-model-name", SERVED_NAME,
               "--tokenizer", str(model_dir), "--isl", "32", "--osl", "16", "--concurrency", f"1,{PARALLEL}",
               "--chip", CHIP_ID, "--chip-file", str(chip), "--gpus", "1", "--engine", "other",
               "--num-requests", "16", "--out", "runs.csv"]
    print("serving a tiny Llama on this CPU; in another shell (with .venv/bin on PATH):\n  " + shlex.join(measure)
          + f"\n  stockpile validate runs.csv --chip-file {chip}"
          + f"\n  stockpile calibrate runs.csv --profile cpu --chip-file {chip}"
          + f"\n  stockpile validate runs.csv --chip-file {chip} --calibration cpu\n", flush=True)
    cmd = [str(binary), "-m", str(gguf), "--alias", SERVED_NAME, "--host", "127.0.0.1", "--port", str(args.port),
           "-c", str(CONTEXT), "-np", str(PARALLEL), "-t", "1", "--no-webui"]
    try:
        return subprocess.call(cmd, env=os.environ.copy())
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
