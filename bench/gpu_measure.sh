#!/usr/bin/env bash
# Close the loop on a real GPU (optional; never a test dependency):
#   export a configuration -> launch the engine as exported -> measure it -> validate the prediction.
#
# Needs: an NVIDIA GPU (nvidia-smi), the engine installed (default vLLM: `pip install vllm`), the model's
# weights reachable (hub or HF_HOME cache), and this project's venv (make test or make demo builds it).
# Without a GPU it says so and exits 0. Results land in $OUT (default bench/results/gpu_measure/).
#
#   MODEL=Qwen/Qwen3-0.6B CHIP=h100-sxm-80gb GPUS=1 bench/gpu_measure.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${MODEL:-Qwen/Qwen3-0.6B}"
CHIP="${CHIP:-h100-sxm-80gb}"
GPUS="${GPUS:-1}"
ENGINE="${ENGINE:-vllm}"
ISL="${ISL:-1000}"
OSL="${OSL:-200}"
CONCURRENCY="${CONCURRENCY:-1,8,32}"
OUT="${OUT:-bench/results/gpu_measure}"
BIN="${BIN:-.venv/bin}"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_measure: no NVIDIA GPU here; skipped"
  exit 0
fi
mkdir -p "$OUT"
nvidia-smi -L | tee "$OUT/gpus.txt"

# the configuration the search picks for this GPU count, as a launch script and as the spec `measure` reads
"$BIN/stockpile" export --target "$ENGINE" --model "$MODEL" --chip "$CHIP" --gpus "$GPUS" --isl "$ISL" --osl "$OSL" \
  --no-disagg --format script --out "$OUT/launch.sh"
"$BIN/stockpile" export --target "$ENGINE" --model "$MODEL" --chip "$CHIP" --gpus "$GPUS" --isl "$ISL" --osl "$OSL" \
  --no-disagg --json --out "$OUT/spec.json"
ENDPOINT=$("$BIN/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['endpoint'].replace('node-0','127.0.0.1'))" "$OUT/spec.json")

LOG_DIR="$OUT/logs" STARTUP_TIMEOUT="${STARTUP_TIMEOUT:-1200}" "$OUT/launch.sh" >"$OUT/launch.log" 2>&1 &
LAUNCHER=$!
trap 'kill $LAUNCHER 2>/dev/null; pkill -P $LAUNCHER 2>/dev/null || true' EXIT
until grep -q "^running" "$OUT/launch.log"; do
  if ! kill -0 $LAUNCHER 2>/dev/null; then echo "launch failed:"; tail -50 "$OUT/launch.log"; exit 1; fi
  sleep 5
done

"$BIN/stockpile" measure --endpoint "$ENDPOINT" --model "$MODEL" --isl "$ISL" --osl "$OSL" \
  --concurrency "$CONCURRENCY" --spec "$OUT/spec.json" --out "$OUT/runs.csv"
"$BIN/stockpile" validate "$OUT/runs.csv" | tee "$OUT/validate.txt"
"$BIN/stockpile" validate "$OUT/runs.csv" --json > "$OUT/validate.json"
