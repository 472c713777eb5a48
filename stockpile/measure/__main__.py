"""`python -m stockpile.measure`: install the cached tools `stockpile measure` and its tests use (`make tools`).

AIPerf (the load generator) into its own virtual environment, and llama.cpp's llama-server built from source
(the real CPU server for the tests); each only once, then a marker check.
"""
from __future__ import annotations

import sys

from stockpile.measure import loadgen, toolenv


def main() -> int:
    try:
        print(f"load generator: {loadgen.ensure_loadgen()}")
        print(f"llama-server:   {toolenv.ensure_llama_server()}")
    except toolenv.ToolError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
