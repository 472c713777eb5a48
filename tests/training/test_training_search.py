"""Layout search: physical bounds over the whole space, monotonicity in GPUs, bad input."""
import numpy as np
import pytest

from stockpile.catalog import get_chip, get_model
from stockpile.errors import InputError, StockpileError
from stockpile.perf.training import TrainJob, TrainLayout
from stockpile.search.training import best_training_layout, estimate, make_job, search, train


@pytest.mark.parametrize("model_id,chip_id,gpus,precision", [
    ("meta-llama/Llama-3.1-8B", "h100-sxm-80gb", 64, "bf16"),
    ("meta-llama/Llama-3.1-70B", "b200-sxm-180gb", 256, "fp8"),
    ("deepseek-ai/DeepSeek-V3", "h800-sxm-80gb", 1024, "fp8"),
    ("Qwen/Qwen3-30B-A3B", "a100-sxm-80gb", 16, "bf16"),
])
def test_mfu_and_hfu_never_exceed_one_anywhere_in_the_space(model_id, chip_id, gpus, precision, priors):
    job = make_job(model_id, chip_id, gpus, tokens=None, seq_len=4096, global_batch_tokens=None, precision=precision)
    for cal in (priors, None):                      # under the priors and under the shipped fit
        out, sp, best = search(job, calibration=cal, require_fit=False)
        assert sp["tp"].size > 100
        assert np.all(out["mfu"] <= out["hfu"] + 1e-12) and np.all(out["hfu"] < 1.0)
        assert np.all(out["step"] > 0)
        assert out["fits"][best]


def test_more_gpus_never_slow_the_best_layout():
    totals = [best_training_layout("meta-llama/Llama-3.1-70B", "h100-sxm-80gb", g, seq_len=8192).tokens_per_s
              for g in (32, 64, 128, 256, 512, 1024)]
    assert all(b >= a for a, b in zip(totals, totals[1:]))
    moe = [best_training_layout("Qwen/Qwen3-30B-A3B", "h100-sxm-80gb", g, seq_len=4096).tokens_per_s
           for g in (8, 16, 32, 64)]
    assert all(b >= a for a, b in zip(moe, moe[1:]))


def test_search_is_a_few_vectorised_passes(monkeypatch):
    # calls of the array model over every layout at once, not one per layout (its speed is a benchmark's business,
    # not a timed test's): one for a framework without partial recompute; three for Megatron (all layouts, the
    # full-recompute ones with none recomputed, then the block-recompute layouts they add, joined to the first)
    import stockpile.search.training as st
    calls: list[int] = []
    real = st.evaluate

    def counted(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(st, "evaluate", counted)
    job = make_job("deepseek-ai/DeepSeek-V3", "h800-sxm-80gb", 2048, tokens=None, seq_len=4096,
                   global_batch_tokens=None, precision="fp8")
    out, sp, _ = search(job)
    assert sp["tp"].size > 10_000 and len(calls) == 3
    arrays = [v for v in (*out.values(), *out["memory"].values()) if not isinstance(v, dict)]
    assert all(np.ndim(v) == 0 or np.size(v) == sp["tp"].size for v in arrays)
    assert (sp["rc_frac"] < 1).any() and np.all(sp["rc_frac"][sp["recompute"] < 2] == 1)
    calls.clear()
    out, sp, _ = search(job.model_copy(update={"framework": "torchtitan"}))
    assert sp["tp"].size > 1_000 and len(calls) == 1


def test_train_reports_the_contract_fields():
    e = train("meta-llama/Llama-3.1-8B", "h100-sxm-80gb", 64, 1e12, seq_len=8192)
    d = e.model_dump()
    for key in ("layout", "step_time_s", "tokens_per_s", "tokens_per_s_per_gpu", "tflops_per_gpu", "mfu", "hfu",
                "memory_gb", "gpu_hours", "days", "goodput", "energy_kwh", "fits"):
        assert d[key] is not None, key
    assert set(d["layout"]) >= {"tp", "pp", "dp", "ep", "cp", "micro_batch", "recompute"}
    assert e.gpu_hours == pytest.approx(e.days * 24 * 64)
    assert 0.5 < e.goodput < 1.0 and e.fits
    assert e.gpu_hours * 3600 * e.tokens_per_s_per_gpu * e.goodput == pytest.approx(1e12, rel=1e-6)
    assert e.energy_kwh == pytest.approx(e.gpu_hours * 0.7 * 1.2, rel=1e-6)      # 700 W TDP x PUE 1.2


def test_fp8_training_is_faster_than_bf16_on_hopper():
    a = best_training_layout("meta-llama/Llama-3.1-70B", "h100-sxm-80gb", 64, seq_len=8192, precision="bf16")
    b = best_training_layout("meta-llama/Llama-3.1-70B", "h100-sxm-80gb", 64, seq_len=8192, precision="fp8")
    assert b.tokens_per_s > 1.1 * a.tokens_per_s


@pytest.mark.parametrize("kwargs,field", [
    (dict(tokens=0), "tokens"), (dict(gpus=0), "gpus"), (dict(precision="int3"), "precision"),
    (dict(chip="l40s-48gb", precision="fp8", model="meta-llama/Llama-3.1-8B"), None),
])
def test_bad_input_raises_a_named_error(kwargs, field):
    args = dict(model="meta-llama/Llama-3.1-8B", chip="a100-sxm-80gb", gpus=8, tokens=1e9, precision="bf16")
    args.update(kwargs)
    if field is None:          # fp8 on a chip with fp8 units is fine
        assert train(args["model"], args["chip"], args["gpus"], args["tokens"], precision=args["precision"]).fits
        return
    with pytest.raises(InputError) as exc:
        train(args["model"], args["chip"], args["gpus"], args["tokens"], precision=args["precision"])
    assert exc.value.field == field


def test_inconsistent_parallel_degrees_are_rejected():
    job = TrainJob(model=get_model("meta-llama/Llama-3.1-8B"), chip=get_chip("h100-sxm-80gb"), gpus=48)
    for lay, field in ((TrainLayout(tp=8, dp=4), "layout"), (TrainLayout(tp=3, dp=16), "tp"),
                       (TrainLayout(tp=1, dp=48, ep=2), "ep"), (TrainLayout(pp=48), "pp")):
        with pytest.raises(InputError) as exc:
            estimate(job, lay)
        assert exc.value.field == field
    with pytest.raises(StockpileError):
        train("no-such/model", "h100-sxm-80gb", 8, 1e9)


def test_megatron_recomputes_only_the_layers_memory_needs():
    """Megatron's block recompute (--recompute-num-layers): where no recompute is over memory and full recompute of
    every layer is under it, the search recomputes the fewest whole layers per stage that fit, and the run is
    faster than full recompute and slower than none. The layout round-trips through `estimate`."""
    fixed = {"tp": 1, "pp": 1, "cp": 2, "dp": 4, "mb": 1, "zero": 1}
    kw = dict(seq_len=8192, global_batch_tokens=2**20, precision="fp8", fixed=fixed)
    best = best_training_layout("meta-llama/Meta-Llama-3-8B", "h100-sxm-80gb", 8, **kw)
    lay = TrainLayout(**{k: v for k, v in best.layout.items() if k != "schedule"})
    assert lay.recompute == "full" and lay.recompute_layers is not None and 1 <= lay.recompute_layers < 32
    assert best.fits and best.memory_gb["total"] <= best.memory_gb["capacity"]
    job = make_job("meta-llama/Meta-Llama-3-8B", "h100-sxm-80gb", 8, tokens=None, seq_len=8192,
                   global_batch_tokens=2**20, precision="fp8")
    one_fewer = estimate(job, lay.model_copy(update={"recompute_layers": lay.recompute_layers - 1}))
    assert not one_fewer.fits                                  # the fewest that fit
    full = estimate(job, lay.model_copy(update={"recompute_layers": None}))
    none = estimate(job, lay.model_copy(update={"recompute": "none", "recompute_layers": None}))
    assert full.tokens_per_s < best.tokens_per_s < none.tokens_per_s and not none.fits
    assert estimate(job, lay).tokens_per_s == pytest.approx(best.tokens_per_s, rel=1e-9)
    assert full.hfu > best.hfu > none.hfu                      # recomputed layers' FLOPs count in the HFU
    # a framework without block recompute (torchtitan's activation checkpointing wraps every block) recomputes all
    titan = best_training_layout("meta-llama/Meta-Llama-3-8B", "h100-sxm-80gb", 8, framework="torchtitan",
                                 **{**kw, "fixed": {**fixed, "zero": 3}})
    assert titan.layout["recompute_layers"] is None


@pytest.mark.parametrize("model_id,chip_id,gpus,seq,precision", [
    ("deepseek-ai/DeepSeek-V3", "h800-sxm-80gb", 2048, 4096, "fp8"),     # MoE, 61 layers on one stage
    ("meta-llama/Llama-3.1-70B", "h100-sxm-80gb", 64, 8192, "bf16"),      # interleaved pipeline stages
])
def test_block_recompute_is_the_fewest_layers_that_fit_wherever_the_search_picks_it(model_id, chip_id, gpus, seq,
                                                                                       precision):
    job = make_job(model_id, chip_id, gpus, tokens=None, seq_len=seq, global_batch_tokens=None, precision=precision)
    best = best_training_layout(job.model, job.chip, gpus, seq_len=seq, precision=precision)
    lay = TrainLayout(**{k: v for k, v in best.layout.items() if k != "schedule"})
    if lay.recompute_layers is None:
        pytest.skip(f"the search recomputes {lay.recompute} layers here")
    fixed = job.model_copy(update={"global_batch_tokens": best.global_batch_tokens})
    assert best.fits and not estimate(fixed, lay.model_copy(update={"recompute_layers": lay.recompute_layers - 1})).fits
    full = estimate(fixed, lay.model_copy(update={"recompute_layers": None}))
    assert full.tokens_per_s <= best.tokens_per_s


def test_a_bf16_gradient_buffer_halves_the_gradient_memory():
    """NeMo 1.x's launcher recipes reduce gradients in bf16 (grad_sync_dtype): its gradient buffer is half of
    Megatron-Core's fp32 one for the same layout, and less memory never makes the best layout slower."""
    fixed = {"tp": 2, "pp": 1, "cp": 1, "dp": 32, "mb": 2}
    kw = dict(seq_len=2048, global_batch_tokens=2**19, precision="fp8", fixed=fixed)
    mega, nemo = (best_training_layout("meta-llama/Llama-2-13b-hf", "h100-sxm-80gb", 64, framework=fw, **kw)
                  for fw in ("megatron", "nemo"))
    lay = TrainLayout(**{k: v for k, v in mega.layout.items() if k != "schedule"})
    jobs = {fw: make_job("meta-llama/Llama-2-13b-hf", "h100-sxm-80gb", 64, tokens=None, seq_len=2048,
                         global_batch_tokens=2**19, precision="fp8", framework=fw) for fw in ("megatron", "nemo")}
    grads = {fw: estimate(j, lay).memory_gb["gradients"] for fw, j in jobs.items()}
    assert grads["nemo"] == pytest.approx(grads["megatron"] / 2, rel=1e-9)
    assert nemo.tokens_per_s >= mega.tokens_per_s


def test_recompute_layers_needs_full_recompute():
    job = make_job("meta-llama/Meta-Llama-3-8B", "h100-sxm-80gb", 8, tokens=None, seq_len=8192,
                   global_batch_tokens=2**20, precision="bf16")
    with pytest.raises(InputError) as e:
        estimate(job, TrainLayout(dp=8, recompute="selective", recompute_layers=4))
    assert e.value.field == "recompute_layers"


@pytest.mark.parametrize("chip_id,ratio", [("h100-sxm-80gb", 1.5), ("b200-sxm-180gb", 1.5), ("a100-sxm-80gb", 1.0)])
def test_transformer_engines_attention_is_hopper_native(chip_id, ratio, priors):
    """Megatron's attention (Transformer Engine's cuDNN fused attention) is written for Hopper's and Blackwell's
    asynchronous tensor cores, torchtitan's SDPA runs FlashAttention-2: the same attention work takes
    GLOBAL_DEFAULTS['attn_native'] (1.5, the FlashAttention-3 paper's low end) times less time there, and the same
    on Ampere, where FlashAttention-2 is the native kernel. Under the priors, where both frameworks' kernel factors
    are 1."""
    from stockpile.perf.training import GLOBAL_DEFAULTS
    lay = TrainLayout(tp=1, pp=1, dp=8, cp=1, micro_batch=1, recompute="none", zero=3)
    times = {}
    for fw in ("megatron", "torchtitan"):
        job = make_job("meta-llama/Llama-3.1-8B", chip_id, 8, tokens=None, seq_len=8192, global_batch_tokens=2**19,
                       precision="bf16", framework=fw)
        times[fw] = estimate(job, lay, calibration=priors).time_breakdown_s["attention"]
    assert GLOBAL_DEFAULTS["attn_native"] == 1.5
    assert times["torchtitan"] / times["megatron"] == pytest.approx(ratio, rel=1e-4)   # (rounded to the us)


def test_tp_overlap_stops_at_the_nvlink_domain(priors):
    """Transformer Engine's TP overlap (userbuffers) needs the TP group inside one NVLink domain: on 8-GPU H100
    nodes Megatron hides its TP collectives at TP 8 (by tp_overlap) and pays them in full at TP 16, as a framework
    without the overlap (DeepSpeed) does."""
    from stockpile.perf.training import GLOBAL_DEFAULTS
    comm = {}
    for fw in ("megatron", "deepspeed"):
        job = make_job("meta-llama/Llama-3.1-70B", "h100-sxm-80gb", 64, tokens=None, seq_len=4096,
                       global_batch_tokens=2**21, precision="bf16", framework=fw)
        for tp in (8, 16):
            lay = TrainLayout(tp=tp, pp=64 // (tp * 4), dp=4, recompute="full", zero=1)
            comm[fw, tp] = estimate(job, lay, calibration=priors).time_breakdown_s["tp_comm"]
    assert comm["megatron", 16] == pytest.approx(comm["deepspeed", 16], rel=1e-4)
    assert comm["megatron", 8] == pytest.approx(comm["deepspeed", 8] * (1 - GLOBAL_DEFAULTS["tp_overlap"]), rel=1e-3)
