import pytest

from stockpile.calibration.notes import default_accept_length, parse_pools, parse_spec
from stockpile.calibration.rows import inference_case
from stockpile.errors import InputError

ROW = dict(id="r1", model="meta-llama/Llama-3.1-8B-Instruct", accelerator="h100-sxm-80gb", num_accelerators="1",
           engine="vllm", weight_dtype="bf16", kv_dtype="", tp="1", pp="", ep="", dp="", input_len="1000",
           output_len="200", concurrency="16", scenario="server", metric="tpot_ms", value="12.5",
           source_url="https://example.org", notes="")


def test_row_parses_with_blanks_left_blank():
    c = inference_case(ROW)
    assert (c.tp, c.pp, c.kv_dtype, c.concurrency, c.spec_draft) == (1, None, None, 16.0, 0)


@pytest.mark.parametrize("col,val", [("metric", "tokens"), ("value", "abc"), ("input_len", "-3"),
                                     ("num_accelerators", "0"), ("tp", "1.5")])
def test_bad_cells_name_the_column(col, val):
    with pytest.raises(InputError) as e:
        inference_case({**ROW, col: val})
    assert e.value.field == col


def test_spec_decoding_from_notes():
    assert parse_spec("MTP NEXTN 3 steps/4 draft tokens, accept length 2.59", "sglang")[:2] == (3, 2.59)
    assert parse_spec("INCLUDES MTP speculative decoding (3 nextn layers)", "trtllm")[0] == 3
    assert parse_spec("spec decoding: none; aggregated", "sglang")[:2] == (0, 1.0)
    draft, acc, used = parse_spec("spec decoding: MTP on; aggregated", "sglang")
    assert draft >= 1 and acc == pytest.approx(default_accept_length(draft)) and used
    # a source that does not say is read as the engine default (off), not as "MTP on"
    assert parse_spec("DP attention and MTP not stated; EP16", "sglang")[:2] == (0, 1.0)
    assert parse_spec("speculative decoding not stated in the post", "other")[:2] == (0, 1.0)


def test_a_decode_phase_measurement_leaves_prefill_out_of_its_step_latency_too():
    notes = "decode-phase measurement (disaggregated): the decode instance alone"
    for metric in ("output_tokens_per_s", "tpot_ms", "itl_ms"):
        assert inference_case({**ROW, "metric": metric, "notes": notes}).decode_only
    assert not inference_case({**ROW, "metric": "ttft_ms", "notes": notes}).decode_only
    assert not inference_case({**ROW, "metric": "tpot_ms"}).decode_only


def test_default_accept_length_grows_with_draft():
    vals = [default_accept_length(k) for k in range(4)]
    assert vals[0] == 1.0 and all(a < b for a, b in zip(vals, vals[1:])) and vals[1] == pytest.approx(1.85) and 2.6 < vals[3] < 3.0


def test_inferencex_pools():
    notes = ("disaggregated prefill/decode: prefill 2 worker(s) TP8/EP8 attnDP = 16 GPUs; "
             "decode 1 worker(s) TP16/EP16 attnDP = 16 GPUs")
    pre, dec = parse_pools(notes)
    assert (pre.workers, pre.tp, pre.attention_dp, pre.gpus) == (2, 8, True, 16)
    assert (dec.workers, dec.tp, dec.ep, dec.gpus) == (1, 16, 16, 16)


def test_ascend_card_pools_count_dies():
    pre, dec = parse_pools("PD disaggregation: prefill 8 cards tp16 dp2, decode 8 cards tp16 dp16; MTP", 2)
    assert (pre.tp, pre.dp, pre.gpus) == (16, 2, 16) and (dec.dp, dec.gpus) == (16, 16)


def test_random_range_ratio_sets_mean_lengths():
    fixed = inference_case({**ROW, "notes": "sglang.bench_serving random dataset, random-range-ratio 1 (fixed lengths)"})
    assert (fixed.isl, fixed.osl, fixed.fixed_lengths) == (1000.0, 200.0, True)
    half = inference_case({**ROW, "notes": "random dataset, --random-range-ratio 0.5"})
    assert (half.isl, half.osl, half.fixed_lengths) == (750.0, 150.0, False)
    assert half.length_spread == pytest.approx(0.5 / 0.75) and fixed.length_spread == 0.0
    assert inference_case({**ROW, "notes": "ShareGPT"}).length_spread == float("inf")
    # InferenceX's harness draws lengths from [0.8 L, L]: a row naming its dataset gets mean 0.9 L
    ix = inference_case({**ROW, "notes": "nominal ISL/OSL (InferenceX random dataset)"})
    assert (ix.isl, ix.osl) == pytest.approx((900.0, 180.0)) and any("uniform" in u for u in ix.notes_used)


def test_inferencex_rows_take_the_harness_fp8_kv_cache():
    notes = "InferenceX dashboard API snapshot; nominal ISL/OSL (InferenceX random dataset); kv dtype not reported"
    fp8 = inference_case({**ROW, "weight_dtype": "fp8", "notes": notes})
    assert fp8.kv_dtype == "fp8" and any("KV cache fp8" in u for u in fp8.notes_used)
    # a stated KV dtype wins; BF16 checkpoints and other sources keep the engine default (blank)
    assert inference_case({**ROW, "weight_dtype": "fp8", "kv_dtype": "bf16", "notes": notes}).kv_dtype == "bf16"
    assert inference_case({**ROW, "weight_dtype": "bf16", "notes": notes}).kv_dtype is None
    assert inference_case({**ROW, "weight_dtype": "fp8", "notes": "vLLM random dataset"}).kv_dtype is None


def test_inferencex_rows_run_ten_requests_per_unit_of_concurrency():
    ix = inference_case({**ROW, "notes": "InferenceX dashboard API snapshot; nominal ISL/OSL"})
    assert ix.num_requests == 160.0 and any("10 per unit" in u for u in ix.notes_used)
    # a stated count wins; other sources leave it unknown
    assert inference_case({**ROW, "notes": "InferenceX dashboard; 500 prompts"}).num_requests == 500.0
    assert inference_case(ROW).num_requests is None


def test_attention_dp_pools_span_the_worker():
    # AMD/GB200 notation: TP1 per attention rank; experts over the worker imply data-parallel attention
    pre, dec = parse_pools("disaggregated prefill/decode: prefill 1 worker(s) TP1/EP8 = 8 GPUs; "
                           "decode 1 worker(s) TP1/EP1 attnDP = 4 GPUs")
    assert (pre.tp, pre.dp, pre.attention_dp) == (8, 8, True)
    assert (dec.tp, dec.ep, dec.dp, dec.attention_dp) == (4, 1, 4, True)


def test_a_pool_worker_spans_its_gpus():
    pre, _ = parse_pools("prefill 1 worker(s) TP1/EP1 = 4 GPUs; decode 2 worker(s) TP8/EP1 = 16 GPUs")
    assert (pre.tp, pre.dp, pre.attention_dp) == (4, 1, False)


def test_pools_given_in_nodes():
    pre, dec = parse_pools("H20-96G, 1 prefill node (pp8) + 1 decode node (ep8) = 16 GPUs", 1, 16)
    assert (pre.pp, pre.tp, pre.gpus) == (8, 1, 8) and (dec.tp, dec.ep, dec.gpus) == (8, 8, 8)
    pre, dec = parse_pools("PD disaggregation: prefill 2 nodes tp32 with context parallel, decode 2 nodes tp32 dp8 "
                           "ep32; MTP", 2, 32)
    assert (pre.tp, pre.gpus) == (32, 32) and (dec.dp, dec.ep, dec.attention_dp) == (8, 32, True)


def test_shared_prefix_workloads_and_burstiness_are_read_from_the_notes():
    from stockpile.calibration.notes import prefix_hit_share
    from stockpile.calibration.rows import inference_case
    base = {"id": "x", "metric": "ttft_ms", "value": "100", "model": "meta-llama/Llama-3.1-8B-Instruct",
            "accelerator": "h100-sxm-80gb", "num_accelerators": "1", "engine": "vllm", "input_len": "2000",
            "output_len": "100", "request_rate": "4"}
    c = inference_case({**base, "notes": "vllm bench serve --dataset-name random --random-prefix-len 1500 "
                                         "--num-prompts 500 (500 prompts), --burstiness 0.5"})
    assert (c.prefix_len, c.prefix_groups, c.burstiness) == (1500, 1, 0.5)
    # every request but the first finds 1500 of its 2000 prompt tokens in the cache
    assert prefix_hit_share(c) == pytest.approx(1500 / 2000 * (1 - 1 / 500))
    g = inference_case({**base, "notes": "sglang.bench_serving --dataset-name generated-shared-prefix "
                                         "--gsp-system-prompt-len 1024 --gsp-num-groups 8 (400 prompts)"})
    assert (g.prefix_len, g.prefix_groups) == (1024, 8)
    assert prefix_hit_share(g) == pytest.approx(1024 / 2000 * (1 - 8 / 400))
    off = inference_case({**base, "notes": "--random-prefix-len 1500, --disable-radix-cache"})
    assert prefix_hit_share(off) == 0.0
    assert prefix_hit_share(inference_case({**base, "notes": "ShareGPT"})) == 0.0


def test_burstiness_below_one_makes_arrivals_burstier():
    import numpy as np

    from stockpile.perf.simulate import poisson_arrivals
    gaps = {b: np.diff(poisson_arrivals(10.0, 20000, isl=10, osl=10, burstiness=b, seed=1).arrival)
            for b in (0.25, 1.0, 4.0)}
    for b, g in gaps.items():
        assert g.mean() == pytest.approx(0.1, rel=0.05)            # the rate is kept
        assert g.std() / g.mean() == pytest.approx(1 / np.sqrt(b), rel=0.1)   # Gamma(b): CV = 1/sqrt(b)


def test_engine_flags_and_speculative_flags_in_the_notes_are_applied():
    from stockpile.calibration.rows import inference_case
    base = {"id": "x", "metric": "tpot_ms", "value": "10", "model": "deepseek-ai/DeepSeek-V3",
            "accelerator": "h200-sxm-141gb", "num_accelerators": "8", "engine": "sglang", "input_len": "1000",
            "output_len": "1000", "concurrency": "64"}
    c = inference_case({**base, "notes": "python3 -m sglang.launch_server --tp 8 --speculative-algorithm EAGLE "
                                         "--speculative-num-steps 2 --speculative-eagle-topk 1 "
                                         "--speculative-num-draft-tokens 3 --max-running-requests 128 "
                                         "--chunked-prefill-size 4096 --mem-fraction-static 0.82"})
    assert (c.spec_draft, c.max_seqs, c.budget, c.mem_util) == (2, 128, 4096, 0.82)
    v = inference_case({**base, "engine": "vllm", "notes": "vllm serve --speculative-config "
                                                           "'{\"method\": \"mtp\", \"num_speculative_tokens\": 1}' "
                                                           "--max-num-seqs 256 --max-num-batched-tokens 16384"})
    assert (v.spec_draft, v.max_seqs, v.budget) == (1, 256, 16384)


def test_engine_flags_written_as_table_columns_or_with_equals_are_read_too():
    from stockpile.calibration.rows import inference_case
    base = {"id": "x", "metric": "tpot_ms", "value": "10", "model": "meta-llama/Llama-3.1-8B-Instruct",
            "accelerator": "h100-sxm-80gb", "num_accelerators": "1", "engine": "vllm", "input_len": "200",
            "output_len": "100", "request_rate": "4"}
    # a benchmark CSV's recorded flags: no dashes in front, TRUE/FALSE values
    c = inference_case({**base, "notes": "vLLM 0.6.3; CSV-recorded flags: num-scheduler-steps 1, "
                                         "enable-chunked-prefill TRUE, max-num-batched-tokens 512, max-num-seqs 256"})
    assert (c.chunked_prefill, c.budget, c.max_seqs, c.multi_step) == (True, 512, 256, 1)
    d = inference_case({**base, "notes": "vllm serve m --enable-chunked-prefill=False --num-scheduler-step 15 "
                                         "--max-num-seqs 1024 --mem-frac 0.87; max-num-batched-tokens default"})
    assert (d.chunked_prefill, d.budget, d.max_seqs, d.mem_util) == (False, None, 1024, 0.87)
    assert d.multi_step == 15 and d.v0_engine
    # SGLang mixing prompt chunks into decode batches: the scheduler simulation's mixed policy, not prefill first
    from stockpile.perf.traffic import engine_policy
    s = inference_case({**base, "engine": "sglang", "notes": "python -m sglang.launch_server --enable-mixed-chunk"})
    assert s.chunked_prefill is True and engine_policy("sglang", None, s.chunked_prefill) == "mixed"
    assert engine_policy("sglang", None, inference_case({**base, "engine": "sglang"}).chunked_prefill) == "prefill_first"
    # which statistic a median report is: over requests, or over every token gap
    assert inference_case({**base, "notes": "statistic: median ITL"}).statistic == "median_itl"
    assert inference_case({**base, "notes": "statistic: median TPOT"}).statistic == "median"
    assert inference_case({**base, "notes": ""}).statistic == "mean"


def test_an_eagle_draft_tree_verifies_its_draft_tokens_and_costs_more_at_a_large_batch():
    """SGLang's `--speculative-num-steps 4 --speculative-eagle-topk 4 --speculative-num-draft-tokens 16` drafts a tree
    and verifies 16 tokens per sequence and step, not the chain's 5: at a large batch (compute-bound verification)
    the step is slower, at batch 1 (weight-bound) it is about the same."""
    from stockpile.calibration.notes import draft_tree
    from stockpile.catalog.chips import get_chip
    from stockpile.catalog.models import get_model
    from stockpile.perf.inference import Layout, estimate
    tree = "--speculative-num-steps 4 --speculative-eagle-topk 4 --speculative-num-draft-tokens 16"
    assert draft_tree(tree, 4) == 16
    assert draft_tree("--speculative-num-steps 3 --speculative-eagle-topk 1 --speculative-num-draft-tokens 4", 3) == 0
    assert draft_tree("--speculative-num-steps 4", 4) == 0
    row = dict(id="t", model="Qwen/Qwen3-8B", accelerator="h100-sxm-80gb", num_accelerators="1", engine="sglang",
               weight_dtype="bf16", kv_dtype="", tp="1", pp="1", ep="", dp="", input_len="1000", output_len="1000",
               concurrency="64", scenario="server", metric="tpot_ms", value="10", source_url="u",
               notes="EAGLE3 " + tree + ", accept length 3.2")
    case = inference_case(row)
    assert (case.spec_draft, case.spec_verify, case.spec_accept) == (4, 16, 3.2)
    assert any("draft tree" in u for u in case.notes_used)
    m, c = get_model("Qwen/Qwen3-8B"), get_chip("h100-sxm-80gb")
    kw = dict(layout=Layout(attn_tp=1), engine="sglang", isl=1000, osl=1000, spec_draft=4, spec_accept=3.2)
    big = [estimate(m, c, concurrency=256, spec_verify=v, **kw).tpot_ms for v in (0, 16)]
    one = [estimate(m, c, concurrency=1, spec_verify=v, **kw).tpot_ms for v in (0, 16)]
    assert big[1] > 1.3 * big[0]
    assert one[1] < 1.15 * one[0]


def test_a_draft_tree_smaller_than_its_chain_is_refused_naming_the_field():
    from stockpile.perf.request import EstimateRequest
    with pytest.raises(InputError) as e:
        EstimateRequest.of(model="Qwen/Qwen3-8B", chip="h100-sxm-80gb", isl=100, osl=100, spec_draft=4, spec_verify=3)
    assert "spec_verify" in str(e.value) and "5" in str(e.value)


def test_a_dataset_cut_to_fixed_lengths_is_read_as_fixed():
    assert not inference_case({**ROW, "notes": "ShareGPT prompts"}).fixed_lengths
    assert inference_case({**ROW, "notes": "ShareGPT text cut to 512 in / 512 out (fixed lengths)"}).fixed_lengths


def test_a_cuda_graph_limit_in_the_notes_replaces_the_engines_and_eager_steps_cost_launch_time():
    """`--enforce-eager` (no graphs: every decode step launches its kernels layer by layer from the host) and
    SGLang's `--cuda-graph-max-bs` are read; at a small batch, where the host's launches outlast the device's
    work, the eager run's TPOT is higher than the same row's with graphs."""
    from stockpile.calibration.inference import validate_rows
    from stockpile.perf.calibration import load_calibration
    row = {**ROW, "model": "meta-llama/Llama-3.1-70B-Instruct", "num_accelerators": "8", "tp": "8",
           "concurrency": "2", "notes": "vLLM 0.6.4, V0 engine"}
    assert inference_case(row).graph_max is None
    eager = {**row, "id": "e", "notes": row["notes"] + ", --enforce-eager --num-scheduler-steps 1"}
    assert inference_case(eager).graph_max == 0
    assert any("eager" in u for u in inference_case(eager).notes_used)
    assert inference_case({**row, "engine": "sglang",
                           "notes": "sglang.launch_server --tp 8 --cuda-graph-max-bs 96"}).graph_max == 96
    assert inference_case({**row, "notes": "no HIP graphs"}).graph_max == 0
    graphs, no_graphs = (r["predicted"] for r in validate_rows([row, eager], load_calibration()))
    assert no_graphs > 1.15 * graphs


def test_int4_weights_with_fp8_activations_run_on_the_fp8_tensor_cores():
    """SGLang's W4AFP8 DeepSeek checkpoints keep int4 experts but multiply in FP8: the compute path is the chip's FP8
    peak (not int4 dequantized to 16 bit); the weight bytes stay int4's. Prefill-heavy, so faster than W4A16."""
    from stockpile.calibration.inference import validate_rows
    from stockpile.perf.calibration import load_calibration
    row = {**ROW, "model": "deepseek-ai/DeepSeek-R1", "accelerator": "h20-96gb", "num_accelerators": "8", "tp": "8",
           "ep": "8", "engine": "sglang", "weight_dtype": "int4", "input_len": "4000", "output_len": "2",
           "concurrency": "64", "metric": "ttft_ms", "value": "1000", "notes": "W4A16 experts"}
    fp8 = {**row, "id": "f", "notes": "DeepSeek-R1-W4AFP8 checkpoint: int4 experts with FP8 activations"}
    assert inference_case(row).act_dtype is None and inference_case(fp8).act_dtype == "fp8"
    assert inference_case({**row, "notes": "W4A8 (int8 activations)"}).act_dtype is None
    w4a16, w4afp8 = (r["predicted"] for r in validate_rows([row, fp8], load_calibration()))
    assert w4afp8 < 0.8 * w4a16


def test_a_blank_gpu_count_is_read_from_tp_and_pp_only_without_data_parallelism():
    c = inference_case({**ROW, "num_accelerators": "", "tp": "4", "pp": "2"})
    assert c.gpus == 8 and any("tp x pp = 8" in u for u in c.notes_used)
    for cells in ({"tp": ""}, {"tp": "4", "dp": "2"}):      # no tp, or attention-DP ranks vs replicas: ambiguous
        with pytest.raises(InputError) as e:
            inference_case({**ROW, "num_accelerators": "", **cells})
        assert e.value.field == "num_accelerators" and "give the GPU count" in str(e.value)


@pytest.mark.parametrize("cell", ["inf", "Unlimited", "none"])
def test_a_concurrency_without_a_cap_reads_as_blank(cell):
    c = inference_case({**ROW, "concurrency": cell, "scenario": "offline", "metric": "output_tokens_per_s"})
    assert c.concurrency is None and any("no cap" in u for u in c.notes_used)
    with pytest.raises(InputError) as e:                       # other words are still not numbers
        inference_case({**ROW, "concurrency": "lots"})
    assert e.value.field == "concurrency"
