import numpy as np
import pytest

from stockpile.errors import InputError
from stockpile.perf.calibration import default_calibration
from stockpile.perf.inference import Configs, estimate, evaluate
from stockpile.perf.layout import resolve_layout
from stockpile.perf.serving import MODE_CLOSED

PRIORS = default_calibration()     # properties are checked under the priors, not whatever fit is shipped


def est(model, chip, **kw):
    base = dict(layout=resolve_layout(gpus=1), engine="vllm", weight_dtype="bf16", kv_dtype="bf16", isl=512, osl=256,
                calibration=PRIORS)
    base.update(kw)
    return estimate(model, chip, **base)


def test_throughput_rises_and_tpot_grows_with_concurrency(tiny_model, tiny_chip):
    rows = [est(tiny_model, tiny_chip, concurrency=c) for c in (1, 4, 16, 64)]
    tput = [r.output_tokens_per_s for r in rows]
    tpot = [r.tpot_ms for r in rows]
    assert all(a < b for a, b in zip(tput, tput[1:]))
    assert all(a <= b for a, b in zip(tpot, tpot[1:]))


def test_batch_one_decode_is_bounded_by_weight_reads(tiny_model, tiny_chip):
    r = est(tiny_model, tiny_chip, concurrency=1)
    floor_ms = tiny_model.params * 2 / 1000e9 * 1e3      # bf16 weights over 1 TB/s
    assert floor_ms < r.tpot_ms < 3 * floor_ms


def test_fp8_weights_decode_faster_than_bf16(tiny_model, tiny_chip):
    a = est(tiny_model, tiny_chip, concurrency=1, weight_dtype="bf16")
    b = est(tiny_model, tiny_chip, concurrency=1, weight_dtype="fp8")
    assert b.tpot_ms < a.tpot_ms
    assert b.memory_gb.weights_gb == pytest.approx(a.memory_gb.weights_gb / 2, rel=0.02)


def test_tensor_parallel_cuts_tpot(tiny_model, tiny_chip):
    one = est(tiny_model, tiny_chip, concurrency=1)
    four = est(tiny_model, tiny_chip, concurrency=1, layout=resolve_layout(gpus=4, tp=4))
    assert four.tpot_ms < one.tpot_ms


def test_model_too_large_does_not_fit(tiny_chip):
    from stockpile.catalog.models import spec_from_config
    big = spec_from_config(dict(model_type="llama", hidden_size=8192, num_hidden_layers=80, num_attention_heads=64,
                                num_key_value_heads=8, intermediate_size=28672, vocab_size=128256), model_id="x/70b")
    r = est(big, tiny_chip, concurrency=1)
    assert not r.fits and "does not fit" in r.limits


def test_queueing_beyond_kv_capacity_raises_ttft(tiny_model, tiny_chip):
    small = est(tiny_model, tiny_chip, concurrency=8, isl=4000, osl=1000)
    over = est(tiny_model, tiny_chip, concurrency=4 * max(small.max_batch, 8), isl=4000, osl=1000)
    assert over.batch <= over.max_batch
    assert over.ttft_ms > 3 * small.ttft_ms


def test_open_loop_saturates(tiny_model, tiny_chip):
    low = est(tiny_model, tiny_chip, request_rate=0.5)
    high = est(tiny_model, tiny_chip, request_rate=1000)
    # a finite run (1,000 requests by default) completes at the offered rate, less the last request's drain
    assert low.requests_per_s == pytest.approx(0.5, rel=0.03)
    assert low.backlog == {"requests": 0, "growing": False}
    assert high.requests_per_s < 1000 and high.ttft_ms > 10 * low.ttft_ms
    assert high.backlog["growing"] and high.backlog["requests"] > 100
    assert any("past capacity" in a for a in high.assumptions)
    assert low.ttft_p50_ms <= low.ttft_p90_ms <= low.ttft_p99_ms


def test_speculative_decoding_cuts_tpot_at_small_batch(tiny_model, tiny_chip):
    base = est(tiny_model, tiny_chip, concurrency=1)
    spec = est(tiny_model, tiny_chip, concurrency=1, spec_draft=2, spec_accept=2.4)
    assert spec.tpot_ms < 0.7 * base.tpot_ms


def test_prefix_cache_cuts_ttft(tiny_model, tiny_chip):
    a = est(tiny_model, tiny_chip, concurrency=1, isl=8000)
    b = est(tiny_model, tiny_chip, concurrency=1, isl=8000, prefix_hit=0.75)
    assert b.ttft_ms < 0.5 * a.ttft_ms


def test_vectorised_matches_scalar(tiny_model, tiny_chip):
    conc = np.array([1.0, 8.0, 32.0])
    out = evaluate(tiny_model, tiny_chip, "vllm", Configs(isl=512, osl=256, mode=MODE_CLOSED, concurrency=conc),
                   PRIORS)
    for i, c in enumerate(conc):
        r = est(tiny_model, tiny_chip, concurrency=c)
        assert out["tpot_s"][i] * 1e3 == pytest.approx(r.tpot_ms)
        assert out["output_tokens_per_s"][i] == pytest.approx(r.output_tokens_per_s)


def test_moe_reads_only_experts_it_hits(tiny_moe, tiny_chip):
    dense_like = tiny_moe.model_copy(update={"experts_per_token": tiny_moe.experts})
    sparse = est(tiny_moe, tiny_chip, concurrency=1)
    every = est(dense_like, tiny_chip, concurrency=1)
    assert sparse.memory_gb.weights_gb == pytest.approx(every.memory_gb.weights_gb)
    # batch 1 reads 4 of 32 experts per layer; the all-expert variant reads them all
    expert_read_ms = tiny_moe.expert_params * 2 / 1000e9 * 1e3
    assert every.tpot_ms - sparse.tpot_ms > 0.5 * expert_read_ms


@pytest.mark.parametrize("kw,field", [(dict(isl=-5), "isl"), (dict(concurrency=-1), "concurrency"),
                                      (dict(concurrency=2, request_rate=1.0), "request_rate"),
                                      (dict(prefix_hit=1.5), "prefix_hit")])
def test_bad_inputs_name_the_field(tiny_model, tiny_chip, kw, field):
    with pytest.raises(InputError) as e:
        est(tiny_model, tiny_chip, **kw)
    assert e.value.field == field


def test_tp_must_split_the_heads(tiny_model, tiny_chip):
    with pytest.raises(InputError) as e:
        est(tiny_model, tiny_chip, layout=resolve_layout(gpus=3, tp=3))
    assert e.value.field == "tp" and "16 attention heads" in str(e.value)


def _disagg(model, chip, pre_pp: int, pre_tp: int, conc: float, num_requests: float = np.nan, sync: float = 1.0,
            isl: float = 8000.0, osl: float = 50.0, rate: float = np.nan):
    from stockpile.perf.inference import chip_dtype_tables, disagg_core
    from stockpile.perf.operators import ChipConsts, ModelConsts
    p = PRIORS.params(chip.family, "sglang")
    peak, kind = chip_dtype_tables(chip, np.array(["bf16"]))
    lay = lambda tp, pp: dict(attn_tp=tp, attn_dp=1, pp=pp, moe_ep=1, moe_tp=tp)  # noqa: E731
    return disagg_core(ModelConsts.of(model), ChipConsts.of(chip), p, pre=lay(pre_tp, pre_pp), dec=lay(1, 1),
                       pre_workers=1, dec_workers=4, weight_dtype=np.array(["bf16"]), kv_dtype=np.array(["bf16"]),
                       gemm_peak=peak, kind=kind, isl=isl, osl=osl, concurrency=conc, rate=rate,
                       num_requests=num_requests, poisson=1.0, spec_draft=0.0, spec_accept=1.0, prefix_hit=0.0,
                       max_seqs=256.0, chunk=8192.0, mem_util=0.9, sync=sync)


def test_pipelined_prefill_pool_keeps_every_stage_busy(tiny_model, tiny_chip):
    # long prompts, short answers, one prefill worker: the prefill pool bounds throughput; a two-stage
    # pipeline of it must not halve what the same two GPUs do as tensor parallel
    pp2 = float(_disagg(tiny_model, tiny_chip, 2, 1, 256.0)["requests_per_s"][0])
    tp2 = float(_disagg(tiny_model, tiny_chip, 1, 2, 256.0)["requests_per_s"][0])
    one = float(_disagg(tiny_model, tiny_chip, 1, 1, 256.0)["requests_per_s"][0])
    assert pp2 > 1.6 * one and pp2 > 0.7 * tp2


def test_prefill_steps_take_the_longer_of_host_launches_and_device_work(tiny_model, tiny_chip):
    from dataclasses import replace

    from stockpile.perf.operators import ChipConsts, ModelConsts, stage_time
    mc, cc = ModelConsts.of(tiny_model), ChipConsts.of(tiny_chip)
    base = PRIORS.params(tiny_chip.family, "vllm")
    lay = dict(attn_tp=1.0, attn_dp=1.0, pp=1.0, moe_ep=1.0, moe_tp=1.0, wbytes=2.0, kvbytes=2.0,
               gemm_peak=100e12, dtype_eff=1.0, dec_ctx=512.0, pre_ctx=256.0)

    def t(p, pre, seqs=0.0):
        return float(stage_time(mc, cc, p, pre_tokens=pre, dec_seqs=seqs, dec_tokens=seqs, **lay))

    slow_host, no_host = replace(base, eager_layer_s=2e-3), replace(base, eager_layer_s=0.0)
    # 16 layers x 2 ms of launches bound a short prompt; a long one hides them behind the device's work
    assert t(slow_host, 16.0) == pytest.approx(16 * 2e-3 + base.step_s, rel=1e-6)
    assert t(slow_host, 64_000.0) == pytest.approx(t(no_host, 64_000.0), rel=1e-6)
    # decode-only steps replay CUDA graphs: no launch term
    assert t(slow_host, 0.0, 8.0) == pytest.approx(t(no_host, 0.0, 8.0))


def test_decode_batches_beyond_the_cuda_graphs_pay_host_launches(tiny_model, tiny_chip):
    from dataclasses import replace

    from stockpile.perf.operators import ChipConsts, ModelConsts, stage_time
    mc, cc = ModelConsts.of(tiny_model), ChipConsts.of(tiny_chip)
    lay = dict(attn_tp=8.0, attn_dp=1.0, pp=1.0, moe_ep=1.0, moe_tp=1.0, wbytes=2.0, kvbytes=2.0,
               gemm_peak=100e12, dtype_eff=1.0, dec_ctx=512.0, pre_ctx=256.0, pre_tokens=0.0)

    def t(p, seqs, **kw):
        return float(stage_time(mc, cc, p, **{**lay, **kw}, dec_seqs=seqs, dec_tokens=seqs))

    sgl = replace(PRIORS.params(tiny_chip.family, "sglang"), eager_layer_s=2e-3, seq_s=5e-6)
    assert (sgl.graph_max, sgl.graph_max_small_tp) == (512.0, 256.0)      # engines/defaults.yaml
    # 500 running requests replay a graph; 600 run eagerly and take at least the layers' launch time
    assert t(sgl, 500.0) < 16 * 2e-3 <= t(sgl, 600.0)
    # SGLang captures only up to 256 requests below TP 4 (on GPUs under 160 GB)
    assert t(sgl, 300.0, attn_tp=2.0) >= 16 * 2e-3
    # vLLM counts tokens (drafts included); TensorRT-LLM is not capped here
    vll = replace(PRIORS.params(tiny_chip.family, "vllm"), eager_layer_s=2e-3, seq_s=5e-6)
    assert float(stage_time(mc, cc, vll, **lay, dec_seqs=200.0, dec_tokens=800.0)) >= 16 * 2e-3
    trt = replace(PRIORS.params(tiny_chip.family, "trtllm"), eager_layer_s=2e-3, seq_s=5e-6)
    assert t(trt, 600.0) < 16 * 2e-3


def test_speculative_tokens_add_host_time_per_sequence_and_verified_token(tiny_model, tiny_chip):
    from dataclasses import replace

    from stockpile.perf.calibration import load_calibration
    from stockpile.perf.operators import ChipConsts, ModelConsts, stage_time
    mc, cc = ModelConsts.of(tiny_model), ChipConsts.of(tiny_chip)
    lay = dict(attn_tp=1.0, attn_dp=1.0, pp=1.0, moe_ep=1.0, moe_tp=1.0, wbytes=2.0, kvbytes=2.0,
               gemm_peak=100e12, dtype_eff=1.0, dec_ctx=512.0, pre_ctx=256.0, pre_tokens=0.0)
    base = replace(PRIORS.params(tiny_chip.family, "sglang"), spec_seq_s=0.0)
    spec = replace(base, spec_seq_s=2e-5)

    def t(p, seqs, tokens):
        return float(stage_time(mc, cc, p, **lay, dec_seqs=seqs, dec_tokens=tokens))

    # 64 sequences verifying 4 tokens each: 3 beyond the first, 2e-5 s apiece, on top of the device time
    assert t(spec, 64.0, 256.0) - t(base, 64.0, 256.0) == pytest.approx(64 * 3 * 2e-5, rel=1e-9)
    # plain decoding (one token per sequence) pays nothing extra
    assert t(spec, 64.0, 64.0) == pytest.approx(t(base, 64.0, 64.0), rel=1e-12)
    # the shipped fit: SGLang's EAGLE loop carries such a cost, TensorRT-LLM's does not (nil prior)
    cal = load_calibration()
    assert cal.params("hopper", "sglang").spec_seq_s > 5e-6 > cal.params("hopper", "trtllm").spec_seq_s


def test_disaggregated_closed_loop_turns_over_once_per_request_latency(tiny_model, tiny_chip):
    # C requests in flight complete at most C per whole request latency (prefill queue and hand-off included)
    for conc in (4.0, 64.0, 512.0):
        out = _disagg(tiny_model, tiny_chip, 1, 1, conc, isl=2000.0, osl=500.0)
        assert float(out["requests_per_s"][0]) <= conc / float(out["e2e_s"][0]) * (1 + 1e-9)


def test_a_request_rate_under_a_concurrency_cap_never_decodes_more_than_the_cap(tiny_model, tiny_chip):
    # bench_serving --request-rate 8 --max-concurrency 16: arrivals beyond the cap wait at the client, so the
    # decode batch holds at most 16 (SGLang's Ascend best-practice runs); the decode steps used to be priced at
    # the rate's open-loop batch, up to the pool's memory cap, while only the cap's requests completed
    capped = _disagg(tiny_model, tiny_chip, 1, 1, 16.0, isl=2000.0, osl=500.0, rate=1000.0)
    closed = _disagg(tiny_model, tiny_chip, 1, 1, 16.0, isl=2000.0, osl=500.0)
    assert float(capped["batch"][0]) <= 16.0 + 1e-9
    assert float(capped["tpot_s"][0]) == pytest.approx(float(closed["tpot_s"][0]), rel=0.05)
    assert float(capped["requests_per_s"][0]) == pytest.approx(float(closed["requests_per_s"][0]), rel=0.05)


def test_a_closed_runs_first_wave_queues_at_once(tiny_model, tiny_chip):
    # varied lengths (sync 0): with a known run length the first C arrivals queue together, a share C / n
    steady = _disagg(tiny_model, tiny_chip, 1, 1, 64.0, sync=0.0, isl=2000.0, osl=500.0)
    short = _disagg(tiny_model, tiny_chip, 1, 1, 64.0, num_requests=128.0, sync=0.0, isl=2000.0, osl=500.0)
    long = _disagg(tiny_model, tiny_chip, 1, 1, 64.0, num_requests=6400.0, sync=0.0, isl=2000.0, osl=500.0)
    t0, t_short, t_long = (float(o["ttft_s"][0]) for o in (steady, short, long))
    assert t0 < t_long < t_short
    # aggregated serving: the same for a closed loop whose run length is known
    def ttft(n):
        cfg = Configs(isl=2000, osl=500, mode=MODE_CLOSED, concurrency=64.0, num_requests=n, sync=0.0)
        return float(evaluate(tiny_model, tiny_chip, "vllm", cfg, calibration=PRIORS)["ttft_s"])
    assert ttft(np.nan) < ttft(6400.0) < ttft(128.0)


def test_a_first_wave_smaller_than_a_chunk_is_prefilled_as_it_is(tiny_model, tiny_chip):
    # 4 prompts of 300 tokens fit any budget of 2048 tokens or more: the first wave's prefill step carries those
    # 1,200 tokens, not a full chunk, so a larger budget cannot slow it (it used to be priced as a full chunk)
    def ttft(chunk):
        cfg = Configs(isl=300, osl=200, mode=MODE_CLOSED, concurrency=4.0, num_requests=8.0, sync=0.0, chunk=chunk)
        return float(evaluate(tiny_model, tiny_chip, "vllm", cfg, calibration=PRIORS)["ttft_s"])
    assert ttft(16384) == pytest.approx(ttft(2048), rel=1e-9)
    # a wave larger than the budget takes several chunks and its prompts finish one after another, so on average
    # they get their first token sooner than if one huge step prefilled them all together
    def big(chunk):
        cfg = Configs(isl=4000, osl=200, mode=MODE_CLOSED, concurrency=16.0, num_requests=32.0, sync=0.0, chunk=chunk)
        return float(evaluate(tiny_model, tiny_chip, "vllm", cfg, calibration=PRIORS)["ttft_s"])
    assert big(2048) < big(65536)


def test_lengths_from_a_narrow_range_keep_part_of_the_lockstep(tiny_model, tiny_chip):
    # a fixed-length closed loop's requests decode their steps in the same batch and come back as the wave
    # their prompts were prefilled in; output lengths from a range smear that return over spread x steps. Short
    # answers to long prompts (the wave takes more steps to prefill than the smear): part of the queue stays
    def ttft(sync, spread, osl=200):
        cfg = Configs(isl=4000, osl=osl, mode=MODE_CLOSED, concurrency=64.0, sync=sync, spread=spread)
        return float(evaluate(tiny_model, tiny_chip, "vllm", cfg, calibration=PRIORS)["ttft_s"])
    fixed, narrow, varied = ttft(1.0, 0.0), ttft(0.0, 0.2), ttft(0.0, np.inf)
    assert varied < narrow < fixed
    # longer answers smear the return past the wave's prefill steps: no lockstep left (InferenceX's loops,
    # lengths in [0.8 L, L], at 1k-8k-token answers), and a wide spread dissolves the waves always
    assert ttft(0.0, 0.2, osl=2000) == pytest.approx(ttft(0.0, np.inf, osl=2000))
    assert ttft(1.0, 0.0, osl=2000) > ttft(0.0, 0.2, osl=2000)
    assert ttft(0.0, 50.0) == pytest.approx(varied)


def test_prefill_first_engine_runs_a_fixed_length_closed_loop_in_waves(tiny_model, tiny_chip):
    # SGLang prefills waiting prompts in prompt-only batches before it decodes: a fixed-length closed loop's
    # requests return together, so a wave's first tokens come batch by batch and its second tokens only after
    # the wave's last batch
    def run(first, conc, batch=4096.0, osl=200):
        cfg = Configs(isl=2000, osl=osl, mode=MODE_CLOSED, concurrency=conc, sync=1.0, prefill_first=first,
                      prefill_batch=batch)
        return {k: float(np.asarray(v).reshape(-1)[0])
                for k, v in evaluate(tiny_model, tiny_chip, "sglang", cfg, calibration=PRIORS).items()}
    mixed, wave = run(0.0, 64.0), run(1.0, 64.0)
    assert wave["ttft_s"] > mixed["ttft_s"]
    # the wait for the later batches lands in TPOT: above a bare decode step, and by more with shorter outputs
    assert wave["tpot_s"] > 1.05 * wave["decode_step_s"]
    short = run(1.0, 64.0, osl=50)
    assert short["tpot_s"] - short["decode_step_s"] > wave["tpot_s"] - wave["decode_step_s"]
    # one batch for the whole wave: nobody waits for a later batch, TPOT is the decode step, and everyone's
    # first token waits for the whole wave's prefill
    one = run(1.0, 64.0, batch=1e9)
    assert one["tpot_s"] == pytest.approx(one["decode_step_s"])
    assert one["ttft_s"] > wave["ttft_s"]
    # a request's latency is the whole cycle, so Little's law holds: C requests per latency
    for out in (wave, short, one):
        assert out["requests_per_s"] == pytest.approx(64.0 / out["e2e_s"], rel=1e-6)
    # the wave's TTFT grows with its size: 64 prompts of 2000 tokens are 32 batches of 4k tokens, a request
    # waits for (32 + 1) / 2 of them on average
    assert run(1.0, 64.0)["ttft_s"] > 2.5 * run(1.0, 8.0)["ttft_s"]
    # varied lengths dissolve the wave: the mixed model's closed loop again
    cfg = Configs(isl=2000, osl=200, mode=MODE_CLOSED, concurrency=64.0, sync=0.0, spread=np.inf, prefill_first=1.0)
    varied = evaluate(tiny_model, tiny_chip, "sglang", cfg, calibration=PRIORS)
    cfg.prefill_first = 0.0
    assert float(varied["tpot_s"]) == pytest.approx(float(evaluate(tiny_model, tiny_chip, "sglang", cfg,
                                                                    calibration=PRIORS)["tpot_s"]))


def test_one_request_alone_prefills_its_whole_prompt_then_decodes_without_prompts_beside_it(tiny_model, tiny_chip):
    """A closed loop of one: its prompt is prefilled whole before its first token, whether the engine prefills
    prompts first (in batches it spans) or mixes chunks into decode steps, and its decode steps carry no prompt
    chunk, as no other request is in flight (the next one arrives when it ends)."""
    def run(first, batch=4096.0, conc=1.0):
        cfg = Configs(isl=20000, osl=200, mode=MODE_CLOSED, concurrency=conc, sync=1.0, prefill_first=first,
                      prefill_batch=batch, chunk=batch)
        return {k: float(np.asarray(v).reshape(-1)[0])
                for k, v in evaluate(tiny_model, tiny_chip, "sglang", cfg, calibration=PRIORS).items()}
    waves, mixed, whole = run(1.0), run(0.0), run(1.0, batch=1e9)
    # five 4k batches: the first token comes after the fifth, not after (5 + 1) / 2 of them
    assert waves["ttft_s"] == pytest.approx(whole["ttft_s"], rel=0.1)
    assert mixed["ttft_s"] == pytest.approx(whole["ttft_s"], rel=0.1)
    assert mixed["tpot_s"] == pytest.approx(mixed["decode_step_s"], rel=0.02)
    assert waves["tpot_s"] == pytest.approx(waves["decode_step_s"], rel=0.02)
    # with others in flight their prompts ride along with the decode steps
    busy = run(0.0, conc=8.0)
    assert busy["tpot_s"] > 1.05 * busy["decode_step_s"]


def test_engine_scheduler_policy_sets_prefill_first():
    from stockpile.perf.traffic import prefill_policy
    # SGLang: prompt-only batches capped by the chunked-prefill size and by --max-prefill-tokens (16,384)
    assert prefill_policy("sglang", 8192) == (1.0, 8192.0)
    assert prefill_policy("sglang", 32768) == (1.0, 16384.0)
    assert prefill_policy("sglang", 8192, "0.5.3", chunked_prefill=True)[0] == 0.0    # --enable-mixed-chunk
    # vLLM V0 runs prompt-only steps unless chunked prefill is on; V1 and TensorRT-LLM mix prompts into decode
    # steps even with chunked prefill off
    assert prefill_policy("vllm", 8192, "0.5.3")[0] == 1.0
    assert prefill_policy("vllm-v0", 8192, None, chunked_prefill=True)[0] == 0.0
    assert prefill_policy("vllm", 8192) == (0.0, 8192)
    assert prefill_policy("vllm", 8192, None, chunked_prefill=False)[0] == 0.0
    assert prefill_policy("trtllm", 8192, None, chunked_prefill=False)[0] == 0.0


def test_estimate_length_spread_decides_whether_sglang_runs_in_waves():
    """`estimate --length-spread`: fixed lengths (0, the default) keep a prefill-first engine's closed loop in
    waves (long TTFT, TPOT carrying the wait for the wave's later batches, and a note saying so); lengths that
    vary break the waves up, and an engine that mixes prompts into decode steps has no waves to break."""
    from stockpile.perf.request import EstimateRequest, run_estimate
    def est(engine, spread):
        return run_estimate(EstimateRequest.of(model="Qwen/Qwen3-32B", chip="h100-sxm-80gb", tp=2, engine=engine,
                                               isl=2048, osl=128, concurrency=128, length_spread=spread))
    fixed, varied, free = est("sglang", 0.0), est("sglang", 0.2), est("sglang", float("inf"))
    assert fixed.ttft_ms > 2 * varied.ttft_ms > 2 * free.ttft_ms
    assert fixed.tpot_ms < varied.tpot_ms
    assert any("waves" in a for a in fixed.assumptions) and not any("waves" in a for a in varied.assumptions)
    v_fixed = est("vllm", 0.0)
    assert not any("waves" in a for a in v_fixed.assumptions)
    assert v_fixed.ttft_ms < fixed.ttft_ms / 3


def test_each_attention_dp_rank_runs_its_own_batch_up_to_the_engine_cap(tiny_moe, tiny_chip):
    """vLLM's --max-num-seqs and SGLang's default cap bound each attention-DP rank's batch; a stated SGLang
    --max-running-requests is the whole server's, shared by its DP ranks."""
    def max_batch(engine, dp, max_seqs=None):
        cfg = Configs(attn_dp=dp, moe_ep=dp, isl=256, osl=64, mode=MODE_CLOSED, concurrency=1e6, max_seqs=max_seqs)
        return float(evaluate(tiny_moe, tiny_chip, engine, cfg, PRIORS)["max_batch"])

    assert max_batch("vllm", 4, 8) == 4 * max_batch("vllm", 1, 8) == 32
    assert max_batch("sglang", 4, 8) == max_batch("sglang", 1, 8) == 8
    assert max_batch("sglang", 4) > max_batch("sglang", 1) > 8


def test_a_closed_loop_clients_lag_grows_with_the_requests_in_flight_and_leaves_tpot(tiny_model, tiny_chip):
    # stream_s: a closed-loop client turns each finished request into the next and reads first chunks on the event
    # loop that serves all C open streams; the first token waits (C - 1) x stream_s more, TPOT does not move, and
    # the C requests turn over once per latency plus the lag (Little's law on the client's side)
    from stockpile.perf.calibration import Calibration
    base = PRIORS.engines["default"]

    def run(stream_s, conc, **kw):
        cal = Calibration(global_=PRIORS.global_, families=PRIORS.families,
                          engines={"default": {**base, "stream_s": stream_s}}, meta={})
        cfg = Configs(isl=1000, osl=500, concurrency=conc, **kw)
        return {k: float(np.asarray(v).reshape(-1)[0])
                for k, v in evaluate(tiny_model, tiny_chip, "vllm", cfg, calibration=cal).items()}
    for conc in (1.0, 16.0, 128.0):
        off, on = run(1e-9, conc, mode=MODE_CLOSED), run(1e-3, conc, mode=MODE_CLOSED)
        assert on["ttft_s"] - off["ttft_s"] == pytest.approx(1e-3 * (on["batch"] - 1.0), rel=1e-3, abs=1e-6)
        assert on["tpot_s"] == pytest.approx(off["tpot_s"], rel=1e-9)
        assert on["requests_per_s"] == pytest.approx(conc / on["e2e_s"], rel=1e-6)
    # an open-loop client sends on its own clock: no lag
    from stockpile.perf.serving import MODE_OPEN
    assert run(1e-3, np.nan, mode=MODE_OPEN, rate=2.0)["ttft_s"] == pytest.approx(
        run(1e-9, np.nan, mode=MODE_OPEN, rate=2.0)["ttft_s"], rel=1e-9)
    # the prior (0.1 ms per other stream) is what an engine without closed-loop rows takes
    assert PRIORS.params(tiny_chip.family, "vllm").stream_s == pytest.approx(1e-4)


def test_linear_attention_state_is_read_and_written_every_decode_step(tiny_chip):
    """A hybrid model's linear-attention layers carry a fixed recurrent state per sequence: no KV cache grows, but
    each decode step reads and writes it, so a large batch pays that traffic on top of the weights."""
    from stockpile.catalog.models import spec_from_config
    from stockpile.perf.operators import ChipConsts, ModelConsts, stage_time
    cfg = dict(model_type="qwen3_next", hidden_size=1024, num_hidden_layers=8, num_attention_heads=8,
               num_key_value_heads=2, head_dim=128, intermediate_size=4096, vocab_size=32000,
               full_attention_interval=4, linear_num_key_heads=8, linear_num_value_heads=16,
               linear_key_head_dim=128, linear_value_head_dim=128)
    hybrid = spec_from_config(cfg, model_id="test/tiny-hybrid")
    mc, cc = ModelConsts.of(hybrid), ChipConsts.of(tiny_chip)
    p = PRIORS.params(tiny_chip.family, "vllm")
    lay = dict(attn_tp=1.0, attn_dp=1.0, pp=1.0, moe_ep=1.0, moe_tp=1.0, wbytes=2.0, kvbytes=2.0,
               gemm_peak=100e12, dtype_eff=1.0, dec_ctx=512.0, pre_ctx=256.0, pre_tokens=0.0)
    parts = {b: stage_time(mc, cc, p, dec_seqs=b, dec_tokens=b, parts=True, **lay) for b in (1.0, 257.0)}
    state = hybrid.linear_layers * hybrid.linear_state_bytes_per_layer      # bytes per sequence, all layers
    assert hybrid.linear_layers == 6 and state > 0
    # 256 more sequences read and write 256 states: the attention part grows by that traffic over the HBM
    grown = float(parts[257.0]["attention"] - parts[1.0]["attention"])
    kv = 256 * 512 * mc.kv_elems * 2.0 * mc.full_layers
    assert grown == pytest.approx((256 * 2 * state + kv) / (cc.mem_bw * p.mem_eff), rel=0.05)
    # split by heads over tensor parallelism
    two = stage_time(mc, cc, p, dec_seqs=257.0, dec_tokens=257.0, parts=True, **{**lay, "attn_tp": 2.0})
    assert float(two["attention"]) < 0.6 * float(parts[257.0]["attention"])


def test_a_varied_length_burst_drains_like_exponential_lengths(tiny_model, tiny_chip):
    """A burst of freely varying lengths (a conversation dataset) ends with its longest requests: once no request
    waits, the batch shrinks as B e^(-t / OSL), and the drain costs OSL x t0 x (ln B + 0.58 - 1) steps of a
    near-empty batch beyond the running batch's work, scaled by burst_tail_var. Measured here as the difference
    between burst_tail_var 1 and 0, for two burst sizes that both run whole."""
    import copy
    cal0, cal1 = copy.deepcopy(PRIORS), copy.deepcopy(PRIORS)
    cal0.global_["burst_tail_var"], cal1.global_["burst_tail_var"] = 0.0, 1.0

    def drain_s(n: int) -> tuple[float, float]:
        kw = dict(engine="sglang", num_requests=n, isl=256, osl=256, length_spread=float("inf"))
        r0, r1 = est(tiny_model, tiny_chip, calibration=cal0, **kw), est(tiny_model, tiny_chip, calibration=cal1, **kw)
        assert r0.batch == pytest.approx(n) and r1.batch == pytest.approx(n)      # the whole burst runs at once
        return n / r1.requests_per_s - n / r0.requests_per_s, r0.tpot_ms

    small, _ = drain_s(64)
    large, tpot_large = drain_s(512)
    assert small > 0
    assert large / small == pytest.approx((np.log(512) - 0.4228) / (np.log(64) - 0.4228), rel=0.02)
    # t0, the step of a near-empty batch, is faster than a step of the full 512
    t0_ms = large * 1e3 / (256 * (np.log(512) - 0.4228))
    assert t0_ms < tpot_large
    # fixed lengths keep their old tail (a share of one lifetime): the varied-length term does not touch them
    fixed = [est(tiny_model, tiny_chip, calibration=c, engine="sglang", num_requests=64, isl=256, osl=256)
             for c in (cal0, cal1)]
    assert fixed[0].requests_per_s == pytest.approx(fixed[1].requests_per_s)



def _fp4_chip(tiny_chip):
    """The tiny chip with native 4-bit tensor cores (a Blackwell-like compute path for fp4 weights)."""
    from tests.conftest import fig
    return type(tiny_chip).model_validate({**tiny_chip.model_dump(), "id": "tiny4-16gb", "family": "blackwell",
                                           "fp4_tflops": fig(400)})


def _with_fp4_share(share: float):
    import copy
    cal = copy.deepcopy(PRIORS)
    cal.global_["fp4_mem_eff"] = share
    return cal


def test_native_fp4_dense_weights_stream_at_their_own_share(tiny_model, tiny_chip):
    """fp4_mem_eff slows only what it names: the dense weight stream of a native 4-bit compute path. At batch 1
    the decode step grows by about the weight bytes read at the lost share of the bandwidth; fp8 weights, and
    4-bit weights on a chip that dequantizes them to 16 bit, are unchanged."""
    from stockpile.perf.inference import WEIGHT_BYTES
    chip4 = _fp4_chip(tiny_chip)
    full, half = _with_fp4_share(1.0), _with_fp4_share(0.5)
    a = est(tiny_model, chip4, concurrency=1, weight_dtype="fp4", calibration=full)
    b = est(tiny_model, chip4, concurrency=1, weight_dtype="fp4", calibration=half)
    p = full.params("blackwell", "vllm")
    from stockpile.perf.operators import ChipConsts
    stream_ms = tiny_model.params * WEIGHT_BYTES["fp4"] / (ChipConsts.of(chip4).mem_bw * p.mem_eff) * 1e3
    assert 0.6 * stream_ms < b.tpot_ms - a.tpot_ms < 1.05 * stream_ms
    for dtype, chip in (("fp8", chip4), ("fp4", tiny_chip)):
        x = est(tiny_model, chip, concurrency=1, weight_dtype=dtype, calibration=full)
        y = est(tiny_model, chip, concurrency=1, weight_dtype=dtype, calibration=half)
        assert x.tpot_ms == pytest.approx(y.tpot_ms, rel=1e-9), dtype


def test_grouped_expert_kernels_keep_their_own_stream_share_on_fp4(tiny_moe, tiny_chip):
    """The 4-bit share applies to the dense-like GEMMs of an MoE model, not to its routed experts (grouped kernels:
    expert_mem_eff); the simulation's engine configuration carries the same share as the analytic model."""
    from stockpile.perf.inference import DTYPE_KINDS, WEIGHT_BYTES, Configs, stream_share
    from stockpile.perf.operators import ChipConsts, ModelConsts, stage_time
    from stockpile.perf.traffic import config_of
    chip4 = _fp4_chip(tiny_chip)
    p = _with_fp4_share(0.5).params("blackwell", "vllm")
    kind = np.array(float(DTYPE_KINDS.index("fp4")))
    assert float(stream_share(p, kind)) == 0.5
    assert float(stream_share(p, np.array(float(DTYPE_KINDS.index("fp8"))))) == 1.0
    one = np.array(1.0)
    parts = {ws: stage_time(ModelConsts.of(tiny_moe), ChipConsts.of(chip4), p, attn_tp=one, attn_dp=one, pp=one,
                            moe_ep=one, moe_tp=one, wbytes=np.array(WEIGHT_BYTES["fp4"]), kvbytes=np.array(1.0),
                            gemm_peak=np.array(4e14), dtype_eff=np.array(p.fp4_gemm_eff), dec_seqs=one,
                            dec_tokens=one, dec_ctx=np.array(512.0), pre_tokens=np.array(0.0),
                            pre_ctx=np.array(512.0), wstream=ws, parts=True)
             for ws in (1.0, 0.5)}
    assert parts[0.5]["experts"] == pytest.approx(parts[1.0]["experts"], rel=1e-12)
    dense_s = ModelConsts.of(tiny_moe).dense_like_params * WEIGHT_BYTES["fp4"] / (ChipConsts.of(chip4).mem_bw * p.mem_eff)
    assert parts[0.5]["gemm"] - parts[1.0]["gemm"] == pytest.approx(dense_s, rel=1e-6)   # the dense stream, twice
    cfg = Configs(weight_dtype="fp4", kv_dtype="fp8", isl=512, osl=64)
    assert config_of(tiny_moe, chip4, "vllm", cfg, p).wstream == 0.5


def test_a_16_bit_decode_gemm_costs_at_least_a_whole_tensor_core_tile():
    """tile_rows floors a 16-bit GEMM's compute at M_TILE rows (max(rows + m_half, M_TILE) in gemm_eff's saturating
    form); 8- and 4-bit paths and GEMMs of M_TILE rows or more keep their own rows."""
    from stockpile.perf import operators as ops
    from stockpile.perf.calibration import load_calibration
    p = load_calibration().params("hopper", "sglang")
    rows = np.array([0.0, 0.5, 1.0, 8.0, 200.0])
    got = ops.tile_rows(p, rows, 2.0)
    r = np.maximum(rows, 1.0)
    assert got == pytest.approx(rows * np.maximum(r + p.gemm_m_half, ops.M_TILE) / (r + p.gemm_m_half))
    assert got[0] == 0.0 and got[-1] == pytest.approx(200.0) and got[2] > 2.0      # one row costs > 2 rows' worth
    assert ops.tile_rows(p, rows, 1.0) == pytest.approx(rows)


def test_an_export_capped_chip_is_compute_bound_at_batch_one_16_bit_decode(monkeypatch):
    """The H20 has more memory bandwidth than the H100 (4.0 vs 3.35 TB/s) but 148 bf16 TFLOP/s: a batch-1 bf16
    decode step's GEMMs cost the compute of a 64-row tile, over its weight read there, so the H20 decodes slower
    than the H100; at FP8, and at batches of more than a tile, the floor changes nothing."""
    from stockpile.catalog import get_chip, get_model
    from stockpile.perf import operators as ops
    model, h20, h100 = get_model("Qwen/Qwen3-8B"), get_chip("h20-96gb"), get_chip("h100-sxm-80gb")

    def tpot(chip, conc, dtype="bf16"):
        return estimate(model, chip, layout=resolve_layout(gpus=1, tp=1), engine="sglang", weight_dtype=dtype,
                        isl=1, osl=2048, concurrency=conc).tpot_ms

    floored = {k: tpot(*k) for k in ((h20, 1), (h100, 1), (h20, 1, "fp8"), (h20, 128))}
    monkeypatch.setattr(ops, "M_TILE", 0.0)
    bare = {k: tpot(*k) for k in floored}
    assert bare[(h20, 1)] < bare[(h100, 1)] < floored[(h20, 1)]          # bandwidth alone would favour the H20
    assert floored[(h20, 1)] > 1.6 * bare[(h20, 1)]
    assert floored[(h100, 1)] == pytest.approx(bare[(h100, 1)], rel=1e-6)  # hidden under the H100's weight read
    assert floored[(h20, 1, "fp8")] == pytest.approx(bare[(h20, 1, "fp8")], rel=1e-6)
    assert floored[(h20, 128)] == pytest.approx(bare[(h20, 128)], rel=1e-3)
    monkeypatch.setattr(ops, "M_TILE", 64.0)
    lim = estimate(model, h20, layout=resolve_layout(gpus=1, tp=1), engine="sglang", weight_dtype="bf16", isl=1,
                   osl=2048, concurrency=1).limits
    assert lim.startswith("16-bit GEMMs' 64-row tensor-core tile floor")      # what binds, said as such


def test_an_engine_that_polls_for_requests_batches_arrivals_and_makes_them_wait(tiny_model, tiny_chip):
    """SGLang's --scheduler-recv-interval N: the scheduler looks for new requests every N decode steps, so a request
    that arrives while others decode waits (N - 1) / 2 steps on average, and what arrived since the last poll is
    prefilled in one batch: fewer prompt steps interrupt the decoding requests. --stream-interval k flushes each
    request's output every k-th step, saving part of the per-sequence host time."""
    def run(recv=1.0, stream=1.0, conc=64.0, **kw):
        cfg = Configs(isl=1000, osl=1000, mode=MODE_CLOSED, concurrency=conc, sync=0.0, spread=0.2, prefill_first=1.0,
                      recv=recv, stream=stream, **kw)
        return {k: float(np.asarray(v).reshape(-1)[0])
                for k, v in evaluate(tiny_model, tiny_chip, "sglang", cfg, calibration=PRIORS).items()}
    base, polled = run(), run(recv=30.0)
    assert polled["ttft_s"] > base["ttft_s"] + 10.0 * polled["decode_step_s"]
    assert polled["tpot_s"] < base["tpot_s"]
    # alone, a request finds the scheduler idle: it polls at once
    assert run(recv=30.0, conc=1.0)["ttft_s"] == pytest.approx(run(conc=1.0)["ttft_s"])
    # flushing output less often shortens the step by part of the per-sequence host time: at most that part
    from stockpile.perf.serving import STREAM_SHARE
    flushed, never = run(stream=50.0), run(stream=1e9)
    assert never["tpot_s"] < flushed["tpot_s"] < base["tpot_s"]
    host = PRIORS.params(tiny_chip.family, "sglang").seq_s * 64.0
    assert base["tpot_s"] - never["tpot_s"] <= STREAM_SHARE * host * 1.05


def test_the_python_estimate_refuses_sglangs_polling_for_another_engine(tiny_model, tiny_chip):
    """The CLI and the API refuse --scheduler-recv-interval / --stream-interval for a non-SGLang engine through
    EstimateRequest; estimate() called from Python refuses them too, naming the field, and refuses a count below 1."""
    lay = resolve_layout(gpus=1, tp=1)
    kw = dict(layout=lay, isl=500, osl=500, concurrency=8)
    with pytest.raises(InputError) as e:
        estimate(tiny_model, tiny_chip, engine="vllm", recv_interval=10, **kw)
    assert e.value.field == "recv_interval" and "SGLang" in str(e.value)
    for bad in (0, 2.5, True):
        with pytest.raises(InputError) as e:
            estimate(tiny_model, tiny_chip, engine="sglang", stream_interval=bad, **kw)
        assert e.value.field == "stream_interval"
    assert estimate(tiny_model, tiny_chip, engine="sglang", recv_interval=10, stream_interval=10, **kw).ttft_ms > 0
