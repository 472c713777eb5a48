"""Engine release families and the kernel-maturity regimes a chip family has under an older release."""
from __future__ import annotations

import numpy as np
import pytest

from stockpile.calibration.fit_inference import _build, _parameters, _prior, _value
from stockpile.calibration.inference import Prepared, prepare_rows
from stockpile.perf.calibration import Calibration, engine_key, load_calibration


def test_release_families_from_the_version():
    assert engine_key("vllm", "0.7.3") == "vllm-v0" and engine_key("vllm", "v0.10.1") == "vllm-v0.11"
    assert engine_key("vllm", "0.11.0") == "vllm-v0.11" and engine_key("vllm", "0.12.0") == "vllm"
    assert engine_key("vllm", "v0.19.1") == "vllm" and engine_key("vllm", None) == "vllm"
    assert engine_key("vllm", None, v0=True) == "vllm-v0"
    assert engine_key("sglang", "0.4.2.post4") == "sglang-v0.4" and engine_key("sglang", "v0.3.0") == "sglang-v0.4"
    assert engine_key("sglang", "v0.5.9") == "sglang" and engine_key("sglang", None) == "sglang"
    assert engine_key("trtllm", "v0.17") == "trtllm-v0" and engine_key("trtllm", "1.0.0") == "trtllm"
    assert engine_key("trtllm", None) == "trtllm"


def test_a_release_family_inherits_its_engine_except_where_a_regime_says_otherwise():
    cal = load_calibration()
    old, new = cal.params("cdna3", "sglang-v0.4"), cal.params("cdna3", "sglang")
    assert old.step_s == new.step_s and old.seq_s == new.seq_s and old.eager_moe_s == new.eager_moe_s
    assert old.moe_eff < new.moe_eff                     # MoE kernels on ROCm matured between the releases
    assert cal.params("hopper", "sglang-v0.4").moe_eff == cal.params("hopper", "sglang").moe_eff


def test_vllm_before_0_12_keeps_its_own_per_sequence_cost():
    """GPUStack's vLLM 0.11 bursts of 1,000 prompts want a larger per-sequence host cost than vLLM 0.12-0.19's
    closed loops (aiconfigurator's silicon data). The family keys keep both, and the kernels are shared. (The gap
    was 6x while the fit saw those bursts in the steady state; seen through the scheduler simulation, as validate
    runs them, preemption carries part of it: 1.7x since the thirty-ninth session.)
    Each family also has its own launch time per layer of a prompt step: V0 ran them eagerly, the current V1
    releases run them as piecewise CUDA graphs (host launches only attention)."""
    cal = load_calibration()
    old, new, v0 = cal.params("hopper", "vllm-v0.11"), cal.params("hopper", "vllm"), cal.params("hopper", "vllm-v0")
    assert old.seq_s > 1.3 * new.seq_s
    assert old.kernel_eff == new.kernel_eff == v0.kernel_eff
    assert v0.eager_layer_s > 2.5 * new.eager_layer_s and old.eager_layer_s > 2.5 * new.eager_layer_s  # 0.25, 0.41 vs 0.09 ms


def _row(model: str, chip: str, engine: str, notes: str) -> dict[str, str]:
    return {"id": "t-1", "model": model, "accelerator": chip, "num_accelerators": "8", "engine": engine,
            "weight_dtype": "fp8", "kv_dtype": "", "tp": "8", "pp": "1", "ep": "", "dp": "1", "input_len": "1000",
            "output_len": "1000", "concurrency": "32", "scenario": "server", "metric": "tpot_ms", "value": "50",
            "source_url": "u", "notes": notes}


def test_the_fit_frees_moe_maturity_only_for_older_releases_with_moe_rows_and_pulls_it_to_what_it_inherits():
    rows = [_row("deepseek-ai/DeepSeek-R1", "mi300x-192gb", "sglang", "SGLang 0.4.2.post4"),
            _row("meta-llama/Llama-3.1-70B-Instruct", "mi300x-192gb", "vllm", "vLLM 0.6.3"),
            _row("deepseek-ai/DeepSeek-R1", "h200-sxm-141gb", "sglang", "SGLang 0.5.9")]
    preps = [p for p in prepare_rows(rows) if isinstance(p, Prepared)]
    assert len(preps) == 3
    spec = _parameters(preps)
    regimes = [t for t in spec if t[0] == "regimes"]
    assert regimes == [("regimes", "cdna3/sglang-v0.4", "moe_eff")]      # the dense vLLM 0.6 row adds none
    # the older release refits only its host path; everything else is the engine's
    assert {t[2] for t in spec if t[0] == "engines" and t[1] == "sglang-v0.4"} == {"ttft_s", "eager_layer_s"}
    start = Calibration(global_={}, families={"cdna3": {"moe_eff": 0.8}}, engines={}, meta={})
    assert _prior(start, "regimes", "cdna3/sglang-v0.4", "moe_eff") == 0.8
    assert _value(start, "regimes", "cdna3/sglang-v0.4", "moe_eff") == 0.8
    built = _build(np.log([0.4]), regimes, start)
    assert built.regimes == {"cdna3/sglang-v0.4": {"moe_eff": 0.4}}
    assert built.params("cdna3", "sglang-v0.4").moe_eff == 0.4 and built.params("cdna3", "sglang").moe_eff == 0.8


def test_an_moe_layer_adds_its_own_host_launch_time_outside_cuda_graphs():
    from stockpile.catalog import get_chip, get_model
    from stockpile.perf.operators import ChipConsts, ModelConsts, stage_time
    cal = load_calibration()
    p = cal.params("hopper", "sglang")
    lay = {k: np.asarray(1.0) for k in ("attn_tp", "attn_dp", "pp", "moe_ep", "moe_tp", "dtype_eff")}
    lay.update(wbytes=np.asarray(1.0), kvbytes=np.asarray(2.0), gemm_peak=np.asarray(1.979e15))
    moe = ModelConsts.of(get_model("Qwen/Qwen3-30B-A3B"))
    cc = ChipConsts.of(get_chip("h200-sxm-141gb"))
    one = dict(dec_seqs=np.asarray(0.0), dec_tokens=np.asarray(0.0), dec_ctx=np.asarray(1.0),
               pre_tokens=np.asarray(8.0), pre_ctx=np.asarray(4.0))
    t = float(stage_time(moe, cc, p, **lay, **one))
    host = moe.layers * p.eager_layer_s + moe.moe_layers * p.eager_moe_s
    # a tiny prompt: the device finishes long before the host has launched every layer
    assert t == pytest.approx(host + p.step_s, rel=1e-6)


def test_estimate_takes_the_release_family_of_engine_version():
    from stockpile.catalog import get_chip, get_model
    from stockpile.perf.inference import estimate
    from stockpile.perf.layout import Layout
    model, chip = get_model("deepseek-ai/DeepSeek-R1"), get_chip("mi300x-192gb")
    lay = Layout(attn_tp=8, attn_dp=1, pp=1, moe_ep=1, moe_tp=8, replicas=1)
    old = estimate(model, chip, engine="sglang", layout=lay, isl=1000, osl=1000, concurrency=32, engine_version="0.4.2")
    new = estimate(model, chip, engine="sglang", layout=lay, isl=1000, osl=1000, concurrency=32, engine_version="0.5.9")
    assert old.tpot_ms > 1.3 * new.tpot_ms          # ROCm MoE kernels before SGLang 0.5 were far slower
    assert any("sglang-v0.4 release family" in a for a in old.assumptions)
    assert not any("release family" in a for a in new.assumptions)


def test_an_engine_may_carry_its_own_all_reduce_latency_over_the_global_one():
    """TensorRT-LLM 1.x's one-shot NVLink all-reduce: its own comm_latency_s overrides the global fit; its 0.x
    release family keeps its own copy of the global value as it stood when 1.x got its own (33.5 us; no fit frees
    it, so it does not inherit 1.x's), and the other engines keep the global one."""
    cal = load_calibration()
    new, old = cal.params("hopper", "trtllm"), cal.params("hopper", "trtllm-v0")
    assert new.comm_latency_s < old.comm_latency_s == cal.engines["trtllm-v0"]["comm_latency_s"]
    assert old.comm_latency_s > 2 * new.comm_latency_s
    assert cal.params("hopper", "vllm").comm_latency_s == cal.global_["comm_latency_s"]
    assert new.moe_layer_s > 10 * old.moe_layer_s


def test_the_fixed_moe_layer_time_adds_only_to_moe_models():
    """moe_layer_s is an MoE layer's short-kernel time at 256 experts: part fixed, part walking the expert list
    (operators.expert_list_scale); a dense model pays none of it."""
    from stockpile.catalog.chips import get_chip
    from stockpile.catalog.models import get_model
    from stockpile.perf.inference import Layout, estimate
    from stockpile.perf.operators import MOE_FIXED_SHARE, expert_list_scale
    assert float(expert_list_scale(256.0)) == pytest.approx(1.0)
    assert float(expert_list_scale(128.0)) == pytest.approx(MOE_FIXED_SHARE + (1 - MOE_FIXED_SHARE) / 2)
    assert float(expert_list_scale(128.0)) < 1.0 < float(expert_list_scale(512.0))
    c = get_chip("h200-sxm-141gb")
    cal = load_calibration()
    off = Calibration.from_dict(cal.to_dict())
    off.engines["trtllm"] = dict(off.engines["trtllm"], moe_layer_s=1e-7)
    for name, moe in (("Qwen/Qwen3-235B-A22B", True), ("Qwen/Qwen3-32B", False)):
        m = get_model(name)
        kw = dict(layout=Layout(attn_tp=8, moe_tp=8), engine="trtllm", weight_dtype="fp8", isl=1000, osl=1000,
                  concurrency=4)
        on_t, off_t = estimate(m, c, calibration=cal, **kw).tpot_ms, estimate(m, c, calibration=off, **kw).tpot_ms
        scale = float(expert_list_scale(float(m.experts)))
        expected = m.moe_layers * (cal.params("hopper", "trtllm").moe_layer_s - 1e-7) * scale * 1e3 if moe else 0.0
        assert on_t - off_t == pytest.approx(expected, rel=0.05, abs=1e-6)


def test_a_dynamo_image_tag_is_not_the_engine_version():
    """aiconfigurator's dump gives the tag of Dynamo's TensorRT-LLM runtime image (Dynamo's own release, 0.8.1)
    as the TensorRT-LLM version; read literally it made those runs TensorRT-LLM 0.x. The image maps to the
    release it ships, or to no version where the table does not list it; a version stated beside the image
    stays."""
    img = "TensorRT-LLM version {v}; image nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:{t}"
    rows = [_row("deepseek-ai/DeepSeek-R1", "b200-sxm-180gb", "trtllm", img.format(v="0.8.1.post1", t="0.8.1.post1")),
            _row("deepseek-ai/DeepSeek-R1", "b200-sxm-180gb", "trtllm", img.format(v="0.5.1-rc0.pre3",
                                                                                   t="0.5.1-rc0.pre3")),
            _row("deepseek-ai/DeepSeek-R1", "b200-sxm-180gb", "trtllm", img.format(v="1.3.0rc1", t="0.9.0")),
            _row("deepseek-ai/DeepSeek-R1", "b200-sxm-180gb", "trtllm", "TensorRT-LLM version 0.17.0")]
    preps = [p for p in prepare_rows(rows) if isinstance(p, Prepared)]
    assert [p.case.engine_version for p in preps] == ["1.2.0rc6.post2", None, "1.3.0", "0.17.0"]
    assert [p.engine_key for p in preps] == ["trtllm", "trtllm", "trtllm", "trtllm-v0"]
    assert any("Dynamo image" in u for u in preps[1].case.notes_used)


def test_a_calibration_read_as_a_release_family_gives_that_family_under_the_engine_name():
    cal = load_calibration()
    for fam, engine, release in (("cdna3", "sglang", "sglang-v0.4"), ("hopper", "vllm", "vllm-v0"),
                                 ("blackwell", "trtllm", "trtllm-v0")):
        assert cal.as_release(engine, release).params(fam, engine) == cal.params(fam, release)
    assert cal.as_release("vllm", "vllm") is cal


def test_search_evaluates_the_stated_release_and_says_so():
    from stockpile.catalog import get_chip, get_model
    from stockpile.errors import InputError
    from stockpile.search.serving import Slo, search
    model, chip = get_model("meta-llama/Llama-3.1-8B-Instruct"), get_chip("h100-sxm-80gb")
    kw = dict(gpus=8, isl=1000, osl=200, slo=Slo(tpot_ms=30), top=3, disaggregation=False)
    now, v0 = search(model, chip, **kw), search(model, chip, engine_version="0.6.3", **kw)
    assert now.best and v0.best and v0.engine_version == "0.6.3" and not now.notes
    assert any("vllm-v0 release family" in n for n in v0.notes)
    # V0's per-step host costs are larger: the same configuration serves each user more slowly
    assert v0.best.tokens_per_s_per_user < now.best.tokens_per_s_per_user
    with pytest.raises(InputError) as bad:
        search(model, chip, engine_version="latest", **kw)
    assert bad.value.field == "engine_version"


def test_a_release_newer_than_the_data_is_predicted_as_the_newest_known_and_said_so():
    from stockpile.errors import InputError
    from stockpile.perf.request import EstimateRequest, run_estimate
    base = dict(model="meta-llama/Llama-3.1-8B-Instruct", chip="h100-sxm-80gb", isl=1000, osl=200, concurrency=8)
    newer = run_estimate(EstimateRequest.of(**base, engine_version="0.99.0"))
    known = run_estimate(EstimateRequest.of(**base, engine_version="0.19.0"))
    assert any("newer than any release in the validation data (newest 0.19)" in a for a in newer.assumptions)
    assert not any("newer than" in a for a in known.assumptions)
    assert newer.tpot_ms == pytest.approx(known.tpot_ms)
    with pytest.raises(InputError) as bad:
        EstimateRequest.of(**base, engine_version="nightly")
    assert bad.value.field == "engine_version" and "release number" in str(bad.value)


def test_an_engine_on_a_chip_family_with_several_models_fits_its_own_kernel_factor_and_all_reduce_latency():
    """A (chip family, engine) regime with rows of three or more models frees its kernel factor and all-reduce
    latency, pulled toward the engine's; fewer models free nothing, and TensorRT-LLM (the kernel reference) none."""
    models = ("Qwen/Qwen3-32B", "meta-llama/Llama-3.1-70B-Instruct", "Qwen/Qwen3-8B")
    rows = [_row(m, "h100-sxm-80gb", "sglang", "SGLang 0.5.6") for m in models]
    rows += [_row(m, "h100-sxm-80gb", "trtllm", "TensorRT-LLM 1.2.0") for m in models]
    rows += [_row(m, "a100-sxm-80gb", "vllm", "vLLM 0.12.0") for m in models[:2]]
    preps = [p for p in prepare_rows(rows) if isinstance(p, Prepared)]
    assert len(preps) == 8
    regimes = [t for t in _parameters(preps) if t[0] == "regimes"]
    assert regimes == [("regimes", "hopper/sglang", "kernel_eff"), ("regimes", "hopper/sglang", "comm_latency_s")]
    start = Calibration(global_={"comm_latency_s": 3e-5}, families={}, engines={"sglang": {"kernel_eff": 0.6}},
                        meta={})
    assert _prior(start, "regimes", "hopper/sglang", "comm_latency_s") == 3e-5
    assert _prior(start, "regimes", "hopper/sglang", "kernel_eff") == 0.6
    built = _build(np.log([0.8, 2e-5]), regimes, start)
    assert built.params("hopper", "sglang").comm_latency_s == pytest.approx(2e-5)
    assert built.params("hopper", "sglang-v0.4").kernel_eff == pytest.approx(0.8)    # its release families too
    assert built.params("ampere", "sglang").comm_latency_s == 3e-5 and built.params("ascend", "sglang").kernel_eff == 0.6


def test_sglang_on_hopper_has_a_shorter_all_reduce_than_sglang_elsewhere():
    cal = load_calibration()
    hop, asc = cal.params("hopper", "sglang"), cal.params("ascend", "sglang")
    assert hop.comm_latency_s < 0.8 * asc.comm_latency_s
    assert asc.comm_latency_s == cal.params("hopper", "vllm").comm_latency_s     # the global value


def test_vllm_on_ascend_replays_graphs_piecewise_so_every_step_pays_the_launch_time_per_layer():
    """vLLM-Ascend's default graph mode leaves attention launched from the host in every step (defaults.yaml
    piecewise_graph_families): a decode step on Ascend is host-bound at its regime's launch time per layer, while
    vLLM on Hopper and SGLang on Ascend keep whole-step graphs."""
    from stockpile.perf.calibration import engine_graph_limits
    assert engine_graph_limits("vllm", "ascend")["graph_max"] == 0.0
    assert engine_graph_limits("vllm", "hopper")["graph_max"] == 512.0
    assert engine_graph_limits("sglang", "ascend")["graph_max"] == 512.0
    from stockpile.catalog import get_chip, get_model
    from stockpile.perf.operators import ChipConsts, ModelConsts, stage_time
    cal = load_calibration()
    dense = ModelConsts.of(get_model("Qwen/Qwen3-32B"))
    lay = {k: np.asarray(v) for k, v in dict(attn_tp=4.0, attn_dp=1.0, pp=1.0, moe_ep=1.0, moe_tp=1.0,
                                              dtype_eff=1.0).items()}
    lay.update(wbytes=np.asarray(2.0), kvbytes=np.asarray(2.0), gemm_peak=np.asarray(3.2e14))
    one = dict(dec_seqs=np.asarray(1.0), dec_tokens=np.asarray(1.0), dec_ctx=np.asarray(500.0),
               pre_tokens=np.asarray(0.0), pre_ctx=np.asarray(0.0))
    cc = ChipConsts.of(get_chip("ascend-910b-64gb"))
    asc, hop = cal.params("ascend", "vllm"), cal.params("hopper", "vllm")
    assert asc.graph_max == 0.0 and hop.graph_max == 512.0
    t_asc = float(stage_time(dense, cc, asc, **lay, **one))
    host = dense.layers * asc.eager_layer_s
    assert asc.eager_layer_s > 5 * hop.eager_layer_s           # the regime's own fit (0.94 ms against 0.08 ms)
    assert t_asc == pytest.approx(host + asc.step_s + asc.seq_s, rel=1e-6)
    t_graph = float(stage_time(dense, cc, hop, **lay, **one))   # the same step under whole-step graphs
    assert t_graph < 0.6 * t_asc


def test_the_fit_frees_a_piecewise_regimes_launch_and_first_token_times_only_where_it_has_rows():
    rows = [_row("Qwen/Qwen3-32B", "ascend-910b-64gb", "vllm", ""), _row("Qwen/Qwen3-32B", "ascend-910b-64gb",
                                                                         "sglang", ""),
            _row("Qwen/Qwen3-32B", "h100-sxm-80gb", "vllm", "")]
    for r in rows:
        r["weight_dtype"] = "bf16"
    preps = [p for p in prepare_rows(rows) if isinstance(p, Prepared)]
    assert len(preps) == 3
    regimes = [t for t in _parameters(preps) if t[0] == "regimes"]
    # its launch time per layer and its own fixed time to a first token (the port's prompt path)
    assert regimes == [("regimes", "ascend/vllm", "eager_layer_s"), ("regimes", "ascend/vllm", "ttft_s")]
    start = Calibration(global_={}, families={}, engines={"vllm": {"eager_layer_s": 8e-5, "ttft_s": 0.045}}, meta={})
    assert _prior(start, "regimes", "ascend/vllm", "eager_layer_s") == 8e-5       # pulled toward the engine's
    assert _prior(start, "regimes", "ascend/vllm", "ttft_s") == 0.045


def test_an_estimate_says_when_host_launches_per_layer_bind():
    from stockpile.catalog import get_chip, get_model
    from stockpile.perf.inference import estimate
    from stockpile.perf.layout import Layout
    lay = Layout(attn_tp=4, attn_dp=1, pp=1, moe_ep=1, moe_tp=1, replicas=1)
    model = get_model("Qwen/Qwen3-32B")
    asc = estimate(model, get_chip("ascend-910b-64gb"), engine="vllm", layout=lay, isl=150, osl=2700, concurrency=1)
    assert asc.limits.startswith("host kernel launches per layer")
    sgl = estimate(model, get_chip("ascend-910b-64gb"), engine="sglang", layout=lay, isl=150, osl=2700, concurrency=1)
    assert not sgl.limits.startswith("host kernel launches") and sgl.tpot_ms < 0.6 * asc.tpot_ms


def test_a_stated_capture_size_does_not_give_a_piecewise_port_whole_step_graphs():
    from stockpile.calibration.inference import Batch
    rows = [_row("Qwen/Qwen3-32B", "ascend-910b-64gb", "vllm", notes) for notes in
            ("", "--max-cudagraph-capture-size 64")]
    rows += [_row("Qwen/Qwen3-0.6B", "h100-sxm-80gb", "vllm", notes) for notes in
             ("", "--max-cudagraph-capture-size 0")]
    for r in rows:
        r.update(weight_dtype="bf16", tp="4", num_accelerators="4", concurrency="1")
    preps = [p for p in prepare_rows(rows) if isinstance(p, Prepared)]
    asc, asc_capped, hop, hop_eager = Batch(preps).run(load_calibration())
    assert asc_capped == pytest.approx(asc)
    assert hop_eager > 1.1 * hop         # on a GPU the stated limit still sends decode steps outside graphs


def test_the_regime_grid_bench_finds_the_rows_a_regime_governs_and_the_shipped_value_fits_them():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "bench" / "regime_grid.py"
    spec = importlib.util.spec_from_file_location("regime_grid", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from stockpile.calibration.fit_inference import default_files
    fitted = mod.rows_in("ascend/vllm", default_files())
    # vLLM-Ascend's suffix-decoding tutorial (Qwen3-32B on 910B), its Kimi-K2-Thinking tutorial (910C) and
    # GPUStack's Qwen3-8B page (910B): three publications, and none of the other files' rows
    pubs = {p.case.publication.rsplit("/", 1)[-1] for p in fitted}
    assert len(fitted) == 75 and pubs == {"suffix_speculative_decoding.md", "Kimi-K2-Thinking.md", "910b.md"}
    cal = load_calibration()
    engine_only = Calibration.from_dict(cal.to_dict())
    engine_only.regimes = {k: v for k, v in cal.regimes.items() if k != "ascend/vllm"}
    assert mod.median_ape(fitted, cal) < 0.5 * mod.median_ape(fitted, engine_only)


def test_a_stated_cudagraph_mode_sets_whole_step_or_piecewise_graphs():
    """vLLM's --compilation-config cudagraph_mode in a row's notes: FULL_DECODE_ONLY gives vLLM-Ascend whole-step
    decode graphs (its production decode nodes' setting), PIECEWISE sends every step on a GPU through per-layer
    launches."""
    from stockpile.calibration.inference import Batch
    full = "--compilation-config '{\"cudagraph_mode\": \"FULL_DECODE_ONLY\"}'"
    piece = "--compilation-config '{\"cudagraph_mode\": \"PIECEWISE\"}'"
    rows = [_row("Qwen/Qwen3-32B", "ascend-910b-64gb", "vllm", n) for n in ("", full)]
    rows += [_row("Qwen/Qwen3-0.6B", "h100-sxm-80gb", "vllm", n) for n in ("", full, piece)]
    for r in rows:
        r.update(weight_dtype="bf16", tp="4", num_accelerators="4", concurrency="1")
    preps = [p for p in prepare_rows(rows) if isinstance(p, Prepared)]
    assert preps[1].case.full_graphs and not preps[0].case.full_graphs and preps[4].case.graph_max == 0
    asc, asc_full, hop, hop_full, hop_piece = Batch(preps).run(load_calibration())
    assert asc_full < 0.6 * asc                         # the per-layer launches are gone from decode
    assert hop_full == pytest.approx(hop) and hop_piece > 1.1 * hop


def test_a_chip_family_gets_its_own_expert_bandwidth_share_only_with_several_moe_models_and_leans_on_the_global():
    moe = ["deepseek-ai/DeepSeek-R1", "Qwen/Qwen3-235B-A22B", "mistralai/Mixtral-8x7B-Instruct-v0.1"]
    rows = [_row(m, "b200-sxm-180gb", "vllm", "") for m in moe]
    rows += [_row(m, "h100-sxm-80gb", "vllm", "") for m in moe[:2]]                      # two MoE models only
    rows += [_row("meta-llama/Llama-3.1-70B-Instruct", "h100-sxm-80gb", "vllm", "")]    # a dense one adds none
    preps = [p for p in prepare_rows(rows) if isinstance(p, Prepared)]
    assert len(preps) == 6
    own = [t for t in _parameters(preps) if t[0] == "families" and t[2] == "expert_mem_eff"]
    assert own == [("families", "blackwell", "expert_mem_eff")]
    start = Calibration(global_={"expert_mem_eff": 0.7}, families={"blackwell": {"mem_eff": 0.8}}, engines={},
                        meta={})
    # unset, the family resolves to the global share, and its own value is pulled toward that
    assert _value(start, "families", "blackwell", "expert_mem_eff") == 0.7
    assert _prior(start, "families", "blackwell", "expert_mem_eff") == 0.7
    spec = [("families", "blackwell", "expert_mem_eff")]
    built = _build(np.log([1.05]), spec, start)
    assert built.params("blackwell", "vllm").expert_mem_eff == pytest.approx(1.05)
    assert built.params("hopper", "vllm").expert_mem_eff == pytest.approx(0.7)


def test_the_shipped_blackwell_memory_efficiency_is_off_its_bound():
    from stockpile.calibration.fit_inference import on_bounds
    hit = {name for name, *_ in on_bounds(load_calibration())}
    assert "blackwell.mem_eff" not in hit
