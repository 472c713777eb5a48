PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test browser check fuzz bench refit-shipped clean cpu-server

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/stockpile plan --report plan.html
	$(BIN)/stockpile estimate --model deepseek-ai/DeepSeek-V3 --chip h800-sxm-80gb --gpus 16 --tp 16 --ep 16 --dp 16 \
		--engine sglang --weight-dtype fp8 --isl 2000 --osl 500 --concurrency 256

# Headless Chromium for the HTML report's browser tests (Debian's package; the test target runs as root on a
# fresh Debian machine). Without apt the tests that need it skip, saying why; the rest of the suite still runs.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		(export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq chromium) >/dev/null \
		|| echo "chromium not installed (apt-get failed or unavailable): the report's browser tests will skip"; }

# the test command runs the static checks first (CI runs exactly this target)
test: check browser
	$(BIN)/python -m pytest

# The measure tools, each installed once into ~/.cache/stockpile/tools (STOCKPILE_TOOL_ENVS moves it): NVIDIA's
# AIPerf load generator in a venv of its own (first run 3 to 5 minutes, 1.2 GB, no torch) and llama.cpp's
# llama-server built from source (about 14 minutes on 2 cores, 15 MB), the real CPU server of the measure tests;
# afterwards a marker check. Under `make test` a missing tool fails those tests instead of skipping them.
.PHONY: tools
tools: $(VENV)/.installed
	$(BIN)/python -m stockpile.measure
test: tools
test: export STOCKPILE_REQUIRE_TOOLS := 1

# The engines' published releases (vLLM, SGLang and their routers, at the flag tables' versions), each in a
# venv of its own under ~/.cache/stockpile/engines (STOCKPILE_ENGINE_ENVS moves it), for the tests that parse
# every emitted argv with the engines' own parsers (tests/deploy/engine_envs.py). First run: about 6 minutes
# and 13 GB on disk (CUDA torch: no CPU build matches their pins); afterwards a marker check. Under
# `make test` a missing engine env fails those tests instead of skipping them.
.PHONY: engines
engines: $(VENV)/.installed
	$(BIN)/python tests/deploy/engine_envs.py
test: engines
test: export STOCKPILE_REQUIRE_ENGINES := 1

# property-based fuzzing: about 17,500 generated CLI arguments, API bodies, scenarios, measured CSVs and model configs (minutes)
fuzz: $(VENV)/.installed
	STOCKPILE_FUZZ=1 $(BIN)/python -m pytest tests/fuzz -m fuzz -p no:cacheprovider

check: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/ruff check stockpile tests bench
	$(BIN)/mypy stockpile --ignore-missing-imports

bench: $(VENV)/.installed
	$(BIN)/python bench/inference_speed.py
	$(BIN)/python bench/simulate_speed.py

# maintainers: refit and overwrite the shipped calibration (users: `stockpile calibrate --profile NAME`)
refit-shipped: $(VENV)/.installed
	$(BIN)/stockpile calibrate --out stockpile/data/calibration/inference.yaml

clean:
	rm -rf $(VENV) build *.egg-info

# a tiny Llama served on this CPU by llama.cpp, for trying measure -> validate -> calibrate (README)
cpu-server: tools
	$(BIN)/python bench/cpu_server.py
