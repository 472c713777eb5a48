"""InferenceX rows take the serving settings of the benchmark script they ran (calibration/harness.py,
bench/inferencex_scripts.py, data/engines/inferencex_scripts.yaml)."""
import importlib.util
from importlib import resources
from pathlib import Path

import pytest
import yaml

from stockpile.calibration.harness import (
    FIELDS,
    apply_script_settings,
    model_code,
    run_date,
    run_value,
    script_settings,
)
from stockpile.calibration.rows import inference_case

BENCH = Path(__file__).resolve().parents[1] / "bench" / "inferencex_scripts.py"


@pytest.fixture(scope="module")
def builder():
    spec = importlib.util.spec_from_file_location("inferencex_scripts", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


VLLM = """#!/usr/bin/env bash
# --kv-cache-dtype fp8 in a comment does not count
MEM=0.92
if [[ $CONC -ge 64 ]]; then SEQS=512; else SEQS=256; fi
vllm serve $MODEL --tensor-parallel-size=$TP --gpu-memory-utilization $MEM --max-num-seqs $SEQS \\
  --max-num-batched-tokens 16384 --compilation-config '{"cudagraph_mode":"PIECEWISE"}'
"""

SGLANG = """python3 -m sglang.launch_server --model-path $MODEL --mem-fraction-static 0.85 \\
  --kv-cache-dtype fp8_e4m3 --cuda-graph-max-bs 256 --max-running-requests 256 --chunked-prefill-size 16384
"""

TRT = """cat > cfg.yml << EOF
cuda_graph_config:
    enable_padding: true
    max_batch_size: 128
kv_cache_config:
    dtype: fp8
    free_gpu_memory_fraction: 0.8
EOF
MAX_NUM_TOKENS=20000
trtllm-serve $MODEL --max_batch_size 512 --max_num_tokens=$MAX_NUM_TOKENS --extra_llm_api_options=cfg.yml
"""


def test_a_script_states_what_it_sets_and_nothing_it_chooses_per_run(builder):
    v = builder.settings(VLLM)
    # no --kv-cache-dtype: vLLM's default, the model's dtype; MEM resolved; SEQS has two values: left out
    assert v == {"engine": "vllm", "kv_dtype": "bf16", "mem_util": 0.92, "budget": 16384, "graph_mode": "PIECEWISE"}
    assert builder.settings(SGLANG) == {"engine": "sglang", "kv_dtype": "fp8", "mem_util": 0.85, "max_seqs": 256,
                                        "budget": 16384, "graph_max": 256}
    assert builder.settings(TRT) == {"engine": "trtllm", "kv_dtype": "fp8", "mem_util": 0.8, "max_seqs": 512,
                                     "budget": 20000, "graph_max": 128}
    # a TensorRT-LLM script without a KV dtype follows its checkpoint: nothing said
    assert "kv_dtype" not in builder.settings(TRT.replace("    dtype: fp8\n", ""))


def test_script_names_drop_their_directory_and_launcher(builder):
    assert builder.script_key("benchmarks/dsr1_fp4_b200_docker.sh") == "dsr1_fp4_b200"
    assert builder.script_key("benchmarks/single_node/fixed_seq_len/gptoss_fp4_h200_trt.sh") == "gptoss_fp4_h200_trt"
    assert builder.script_key("benchmarks/benchmark_lib.sh") is None
    assert builder.script_key("benchmarks/multi_node/dsr1_fp8_mi355x_sglang-disagg.sh") is None
    # launcher variants that disagree keep only what they share
    assert builder._merge([{"engine": "vllm", "mem_util": 0.9, "max_seqs": 256},
                           {"engine": "vllm", "mem_util": 0.95, "max_seqs": 256}]) == {"engine": "vllm", "max_seqs": 256}


def test_the_shipped_table_is_dated_and_sourced():
    raw = yaml.safe_load((resources.files("stockpile") / "data" / "engines" / "inferencex_scripts.yaml").read_text())
    assert len(raw) > 50
    for key, versions in raw.items():
        dates = [str(v["since"]) for v in versions]
        assert dates == sorted(dates), key
        for v in versions:
            assert len(v["commit"]) == 40 and v["path"].startswith("benchmarks/") and key in v["path"].replace(
                "_docker", "").replace("_slurm", "")
            assert v["engine"] in ("vllm", "sglang", "trtllm")


def test_a_run_takes_the_script_as_it_stood_on_its_date():
    assert model_code("MiniMaxAI/MiniMax-M2.5") == "minimaxm2.5" and model_code("zai-org/GLM-5") == "glm5"
    assert model_code("zai-org/GLM-5.1") == "glm5.1" and model_code("meta-llama/Llama-3.1-8B") is None
    assert run_date("source db-dump; measured 2026-03-27; vLLM 0.18") == "2026-03-27"
    # the H200 MiniMax script ran vLLM's default KV cache until May 2026, FP8 after
    march = script_settings("MiniMaxAI/MiniMax-M2.5", "fp8", "h200-sxm-141gb", "vllm", False, "2026-03-27")
    june = script_settings("MiniMaxAI/MiniMax-M2.5", "fp8", "h200-sxm-141gb", "vllm", False, "2026-06-10")
    assert march.values["kv_dtype"] == "bf16" and june.values["kv_dtype"] == "fp8"
    assert "minimaxm2.5_fp8_h200.sh at" in march.source
    assert script_settings("MiniMaxAI/MiniMax-M2.5", "fp8", "h200-sxm-141gb", "vllm", False, "2025-01-01") is None
    # an engine the script does not run finds nothing
    assert script_settings("MiniMaxAI/MiniMax-M2.5", "fp8", "h200-sxm-141gb", "trtllm", False, "2026-03-27") is None


ROW = dict(id="x", model="MiniMaxAI/MiniMax-M2.5", accelerator="h100-sxm-80gb", num_accelerators="4", engine="vllm",
           weight_dtype="fp8", kv_dtype="", tp="4", pp="1", ep="4", dp="", input_len="8192", output_len="1024",
           concurrency="64", scenario="server", metric="ttft_ms", value="30558", source_url="https://example.org",
           notes="measured 2026-03-27; vLLM version 0.18.0; aggregated (no disagg): one instance of 4 GPU(s); "
                 "benchmark harness: InferenceX (this dump reproduces InferenceX dashboard values); nominal ISL/OSL "
                 "(InferenceX random dataset, lengths uniform in [0.8 L, L])")


def test_an_inferencex_row_takes_only_the_shipped_settings_unless_asked():
    c = inference_case(ROW)
    # minimaxm2.5_fp8_h100.sh: no --kv-cache-dtype, --gpu-memory-utilization 0.90, PIECEWISE graphs; a fit with those
    # was worse on every file, so by default the harness's general FP8 rule stands and the script's memory is unread
    assert (c.kv_dtype, c.mem_util, c.graph_max) == ("fp8", None, None)
    assert any("KV cache fp8" in u for u in c.notes_used)
    undated = inference_case({**ROW, "kv_dtype": "", "notes": ROW["notes"].replace("measured 2026-03-27; ", "")})
    assert undated.kv_dtype == "fp8"
    # asked for every field, the script's own settings apply where the row does not state them
    c = inference_case({**ROW, "kv_dtype": "bf16"})
    assert apply_script_settings(c, ROW["notes"], fields=FIELDS)
    assert (c.kv_dtype, c.mem_util, c.graph_max) == ("bf16", 0.9, 0)
    assert any(u.startswith("InferenceX script minimaxm2.5_fp8_h100.sh") for u in c.notes_used)
    notes = ROW["notes"].replace("aggregated (no disagg)", "disaggregated")
    disagg = inference_case({**ROW, "notes": notes})
    assert not apply_script_settings(disagg, notes, fields=FIELDS) and disagg.mem_util is None


RECV = """CONC=${CONC}
if [[ $CONC -ge 16 ]]; then
  SCHEDULER_RECV_INTERVAL=30
else
  SCHEDULER_RECV_INTERVAL=10
fi
if [[ "$DP_ATTENTION" == "true" ]]; then
    SCHEDULER_RECV_INTERVAL=1
    nvidia-smi
fi
python3 -m sglang.launch_server --model-path $MODEL --scheduler-recv-interval $SCHEDULER_RECV_INTERVAL \\
  --stream-interval $( [[ $CONC -gt 4 ]] && echo 30 || echo 10 )
"""


def test_per_run_flags_follow_the_scripts_shell_logic(builder):
    s = builder.settings(RECV)
    # the poll interval depends on concurrency and data-parallel attention, the same in every TP and prompt length
    recv = s["recv_interval"]
    assert recv["tp8"] == [[1, 10], [16, 30]] and recv["tp8_dp"] == [[1, 1]] and recv["tp2_8k"] == recv["tp8"]
    assert s["stream_interval"] == {"": [[1, 10], [8, 30]]}
    assert run_value(recv, 8, False, 1024, 8) == 10 and run_value(recv, 8, False, 8192, 64) == 30
    assert run_value(recv, 8, True, 1024, 64) == 1 and run_value(s["stream_interval"], 4, False, 1024, 4) == 10
    assert run_value(7, 1, False, 1024, 1) == 7 and run_value({"tp4": [[1, 10]]}, 8, False, 1024, 8) is None
    # a flag the script does not pass, or a value bash cannot tell, is left out
    assert "recv_interval" not in builder.settings(RECV.replace("--scheduler-recv-interval", "--other-flag"))


def test_the_scripts_logic_runs_in_a_shell_that_cannot_run_commands(builder, tmp_path):
    # only bash's builtins: an external command in a condition or a value does not run, and a value it would give
    # leaves its case out (here every case reaches 16 in flight); what builtins decide is still read
    marker = tmp_path / "made"
    script = RECV.replace('if [[ "$DP_ATTENTION" == "true" ]]; then', f"if touch {marker}; then").replace(
        "SCHEDULER_RECV_INTERVAL=30", "SCHEDULER_RECV_INTERVAL=$(seq 30 30)")
    s = builder.settings(script)
    assert not marker.exists()
    assert "recv_interval" not in s and s["stream_interval"] == {"": [[1, 10], [8, 30]]}


SGL_ROW = dict(ROW, model="Qwen/Qwen3.5-397B-A17B", accelerator="b300-sxm-288gb", engine="sglang", tp="4", ep="1",
               input_len="1024", output_len="1024", concurrency="256",
               notes=ROW["notes"].replace("2026-03-27", "2026-04-20").replace("vLLM version 0.18.0",
                                                                           "SGLang version 0.5.10"))


def test_an_sglang_row_polls_and_flushes_as_its_script_did():
    c = inference_case(SGL_ROW)
    # qwen3.5_fp8_b300.sh: --scheduler-recv-interval 10 --stream-interval 50 --mamba-ssm-dtype bfloat16
    assert (c.recv_interval, c.stream_interval, c.ssm_dtype) == (10, 50, "bf16")
    assert any("polls for requests every 10" in u for u in c.notes_used)
    # the notes win over the script
    stated = inference_case({**SGL_ROW, "notes": SGL_ROW["notes"] + "; --scheduler-recv-interval 4"})
    assert stated.recv_interval == 4


def test_a_16_bit_recurrent_state_halves_what_a_hybrid_model_keeps_per_sequence(builder):
    from stockpile.calibration.inference import _model_consts
    from stockpile.catalog import get_model
    assert builder.settings(SGLANG + " --mamba-ssm-dtype bfloat16")["ssm_dtype"] == "bf16"
    assert "ssm_dtype" not in builder.settings(SGLANG)          # SGLang's default, float32, is the catalog's
    m = get_model("Qwen/Qwen3.5-397B-A17B")
    full, half = _model_consts(m).linear_state_bytes, _model_consts(m, "bf16").linear_state_bytes
    assert full > 0 and half == pytest.approx(full / 2)
    dense = get_model("Qwen/Qwen3-32B")
    assert _model_consts(dense, "bf16") == _model_consts(dense)
    stated = inference_case({**SGL_ROW, "notes": SGL_ROW["notes"] + "; --mamba-ssm-dtype float32"})
    assert stated.ssm_dtype == "fp32"
    assert inference_case({**SGL_ROW, "notes": SGL_ROW["notes"] + "; --mamba-ssm-dtype bf16"}).ssm_dtype == "bf16"
