"""Validate the training model on measured rows (CONTRACTS.md training schema): row -> case -> prediction.

Each row becomes a :class:`Case`: the model (catalog id, or the architecture columns, or a shape derived
from ``params_b``), the chip, the stated parallel degrees, and what the ``notes`` say that no column holds
(micro-batch, virtual stages, FSDP mode, compile / async TP, the cluster's network). Blank cells take the
framework's default or the layout search, and the row's ``assumed`` list says which. Metrics are read in
the source's own FLOP convention (Megatron and MosaicML count attention over the full s x s matrix, newer
Megatron-Bridge only the causal half; 2021 Megatron counts recompute).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stockpile.calibration.bands import fitted_training_publications, training_band
from stockpile.calibration.rows import cell_number, float_or_none, metric_and_value
from stockpile.calibration.status import OK, UNSUPPORTED, status_of
from stockpile.catalog.chips import get_chip
from stockpile.catalog.models import ModelSpec, get_model, spec_from_config
from stockpile.errors import InputError, MissingFigureError, StockpileError, UnknownNameError
from stockpile.perf.frameworks import framework
from stockpile.perf.goodput import job_goodput
from stockpile.perf.training import (
    TrainCalibration,
    TrainChip,
    TrainConsts,
    TrainJob,
    eight_bit_dtype,
    hardware_flops_per_token,
    load_training_calibration,
    model_flops_per_token,
)
from stockpile.search.training import MAX_BATCH_TOKENS, make_job, search

# step_time_s (seconds per optimizer step: the global batch in tokens over tokens/s) extends shared/CONTRACTS.md's
# list; it needs global_batch_tokens
METRICS = ("mfu", "hfu", "tflops_per_gpu", "tokens_per_s_per_gpu", "tokens_per_s", "gpu_hours", "days", "step_time_s")
# source (URL pattern) -> (calibration framework, attention convention causal?, TFLOPs count recompute?)
SOURCES: list[tuple[str, str, str, bool, bool]] = [
    # training_added.csv: AMD's ROCm PyTorch container (PyTorch FSDP, the pytorch-training-benchmark script), AMD's
    # Primus (Megatron-LM backend) and MaxText on ROCm (before the generic maxtext and llama patterns)
    ("rocm/pytorch-training", "rocm-fsdp", "pytorch-fsdp", False, False),
    ("AMD-AGI/Primus", "primus", "megatron", True, False),
    ("ROCm/rocm-blogs", "maxtext-rocm", "maxtext", False, False),
    ("NVIDIA/NeMo/blob", "nemo", "nemo", False, False),                        # NeMo 24.07 (full attention)
    ("Megatron-LM/blob/2dae74b6f5", "megatron2021", "megatron2021", False, True),    # Narayanan 2021 formula
    ("Megatron-Bridge", "megatron-bridge", "megatron", True, False),             # causal half (25.x formula)
    ("Megatron-LM/blob/f2e5db402c^", "megatron2022", "megatron2022", False, False),  # Korthikanti 2022 README
    ("Megatron-MoE-ModelZoo", "megatron-core-moe", "megatron", True, False),    # MCore MoE team, 2025-26
    ("deepseek-v3-gb200-optimization", "megatron-core-moe", "megatron", True, False),
    ("2603.07685", "megatron-core-moe", "megatron", True, False),                 # the same team's report
    ("2504.14960", "megatron-core-moe", "megatron", False, False),                # its Parallel Folding paper
    # Huawei's Megatron port for Ascend (MindSpeed-LLM, formerly ModelLink): its README's per-model table (before the
    # generic Megatron-LM pattern, which its notes may name)
    ("MindSpeed-LLM", "mindspeed", "megatron", True, False), ("ModelLink", "mindspeed", "megatron", True, False),
    ("Megatron-LM", "megatron-core", "megatron", False, False),                  # Megatron-Core README 2024
    ("llm-foundry", "llm-foundry", "mosaic", False, False),
    ("torchtitan-npu", "torchtitan-npu", "torchtitan", True, False),
    ("torchtitan", "torchtitan", "torchtitan", True, False),
    ("maxtext", "maxtext", "maxtext", False, False), ("tpu-recipes", "maxtext", "maxtext", False, False),
    ("mindformers", "mindformers", "mindspore", True, False),
    ("InternLM", "internevo", "internevo", False, True),
    ("gaudi", "gaudi", "deepspeed", True, False),
    ("deepseek", "deepseek", "hai-llm", True, False), ("2405.04434", "deepseek", "hai-llm", True, False),
    ("2504.07866", "pangu", "megatron", True, False), ("2505.04519", "pangu", "megatron", True, False),
    ("llama", "meta", "meta", True, False),
]
# what a lab's whole-run figures ran on when the row does not say (gpu_hours / days rows only)
LAB_CLUSTERS = {("meta", "h100"): (16384, "16,384 H100: Llama 3 405B's cluster (arXiv:2407.21783 sec. 3.3)"),
                ("deepseek", "h800"): (2048, "2,048 H800: DeepSeek-V3's cluster (arXiv:2412.19437 sec. 3.1)")}
DEFAULT_SEQ = {"torchtitan": 8192, "meta": 8192, "maxtext": 2048}
# MaxText's tiering table reports its benchmark recipes' runs; its v6e Mixtral figures (3,899 and 1,326 tokens/s per
# chip) are, within 0.1 %, the logged step rates of the Trillium recipes mixtral_8x7b_dropped and mixtral_8x22b_dropped
# (benchmarks/maxtext_trillium_model_configs.py; AI-Hypercomputer/tpu-recipes), which drop tokens at capacity
# factor 1.25 with megablox off
TIERING_DROPPED = {"mistralai/Mixtral-8x7B-v0.1": 1.25, "mistralai/Mixtral-8x22B-v0.1": 1.25}
# how a whole-run row's unstated GPU count is sized (the 90-day rule); fit_training leaves such rows out of the fit
UNSTATED_CLUSTER = "finishes within 90 days (not stated)"
# an 8-bit recipe on a TPU without fp8 units runs AQT int8 (perf/training.eight_bit_dtype): predicted, not fitted,
# since the one FP8 efficiency the fit shares across GPU FP8 recipes does not describe it (docs/training-model.md)
AQT_INT8 = "int8 units (AQT int8"


# a figure the row takes from a secondary source (a list or a blog quoting a paper) rather than the publication
# itself is validated, not fitted: the shipped file's five (Pangu Ultra's 52 % MFU, which its notes say was not read
# in the paper; Pangu Ultra MoE's MFU steps; torchtitan-npu's two 910C runs) held Ascend's GEMM efficiency and two
# NPU framework factors on their bounds, which ran a 910B's GEMMs above its peak (docs/training-model.md)
SECONDARY = "figure via a secondary source: validated, not fitted"


def is_fitted(case: "Case") -> bool:
    """Whether the training fit uses this case: rows whose cluster size is assumed (UNSTATED_CLUSTER), whose
    8-bit path the shared FP8 efficiency does not describe (AQT_INT8) or whose figure comes via a secondary source
    (SECONDARY) are validated, not fitted."""
    return not any(UNSTATED_CLUSTER in a or AQT_INT8 in a or SECONDARY in a for a in case.assumed)
RECOMPUTE_WORDS = {"full": 2, "selective": 1, "none": 0}


# patterns the notes may match too: a code repository (owner/name) or a framework's name says what the run ran on.
# The others name a model ("llama", "deepseek"), a model family's organisation ("InternLM"), a chip ("gaudi") or a
# paper, which a note may mention about anything: they count in the source URL only.
NOTES_SOURCES = ("megatron-bridge", "megatron-moe-modelzoo", "megatron-lm", "llm-foundry", "torchtitan-npu",
                 "torchtitan", "maxtext", "tpu-recipes", "mindformers", "mindspeed-llm", "modellink")


def source_of(row: dict[str, str]) -> tuple[str, str, bool, bool]:
    """(source key, framework, causal attention convention, TFLOPs include recompute). A source is known by its
    publication's URL; the notes count only for a pattern naming a code repository (owner/name: the run's code) or
    a framework (NOTES_SOURCES), so that a note naming a model ("a Llama 3 recipe", "DeepSeek-V3's layout") or a
    chip ("Gaudi") does not hand a row another lab's framework."""
    url = (row.get("source_url") or "").lower()
    notes = (row.get("notes") or "").lower()
    for pat, key, fw, causal, rc in SOURCES:
        p = pat.lower()
        if p in url or (("/" in p or p in NOTES_SOURCES) and p in notes):
            return key, fw, causal, rc
    return "other", "megatron", True, False


@dataclass
class Case:
    row_id: str
    metric: str
    measured: float
    source: str
    job: TrainJob
    causal: bool
    tflops_recompute: bool
    fixed: dict[str, int] = field(default_factory=dict)
    model_parallel: int | None = None
    flags: dict[str, float] = field(default_factory=dict)
    out_bw: float | None = None
    assumed: list[str] = field(default_factory=list)


def _num(row: dict[str, str], key: str) -> float | None:
    v = (row.get(key) or "").strip()
    return cell_number(key, v) if v else None


def _note(notes: str, pattern: str) -> int | None:
    m = re.search(pattern, notes, re.I)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- the model of a row
def _solve_width(params: float, layers: float, per_h2: float, vocab: float) -> int:
    """Hidden size h with layers x per_h2 x h^2 + 2 vocab h = params, rounded to 128."""
    a, b = layers * per_h2, 2.0 * vocab
    h = (-b + math.sqrt(b * b + 4 * a * params)) / (2 * a)
    return max(128, int(round(h / 128.0)) * 128)


def derive_spec(row: dict[str, str], notes_used: list[str]) -> ModelSpec:
    """A model from the row's architecture columns; blanks from `params_b` with published aspect ratios:
    GPT-3 (Brown et al. 2020, Table 2.1: ffn 4h, h/layers ~ 128) for GPT/MPT names, Llama 3 (gated FFN 3.5h,
    8 KV heads of 128) otherwise; MaxText synthetic sizes by MaxText's own global_parameter_scale rule."""
    name = (row.get("model") or "").lower()
    params = (_num(row, "params_b") or 0.0) * 1e9
    active = (_num(row, "active_params_b") or 0.0) * 1e9
    L, h = _num(row, "layers"), _num(row, "hidden")
    heads, kv, ffn, vocab = _num(row, "heads"), _num(row, "kv_heads"), _num(row, "ffn_hidden"), _num(row, "vocab")
    E, k = _num(row, "experts"), _num(row, "experts_per_token")
    gpt = "gpt" in name or "mpt" in name
    plain = gpt or "nemotron" in name            # Nemotron's squared-ReLU FFN is not gated either
    scale = params / 1e9
    if "maxtext-synthetic" in name and scale >= 1 and 2 ** round(math.log2(scale)) == scale and not (L or h):
        base, rem = divmod(int(round(math.log2(scale))), 3)       # MaxText pyconfig get_individual_scales
        heads = 16.0 * 2 ** (base + (rem > 0))
        ffn, h, L = 7168.0 * 2 ** (base + (rem > 0)), 2048.0 * 2 ** (base + (rem > 1)), 16.0 * 2**base
        kv, vocab = heads, vocab or 32000.0
        notes_used.append(f"architecture from MaxText's global_parameter_scale={scale:g} (base.yml)")
    vocab = vocab or (51200.0 if gpt else 128256.0)
    ratio = 4.0 if gpt else 3.5
    per_h2 = (4.0 if gpt else 2.25) + (2.0 if gpt else 3.0) * ratio
    dense_params = params if not (E and k) else None
    if not params and not (L and h):
        raise InputError("params_b", "needs params_b or the layers and hidden columns")
    if dense_params and not (L and h):
        if L:
            h = float(_solve_width(params, L, per_h2, vocab))
        elif h:
            L = float(max(1, round((params - 2 * vocab * h) / (per_h2 * h * h))))
        else:
            L = float(max(2, round((params / (per_h2 * 128.0**2)) ** (1 / 3))))
            h = float(_solve_width(params, L, per_h2, vocab))
        notes_used.append(f"shape derived from params_b={params / 1e9:g}B with the {'GPT-3' if gpt else 'Llama 3'} "
                          f"aspect ratio: {L:.0f} layers, hidden {h:.0f}")
    if not (L and h):
        raise InputError("layers", "an MoE model outside the catalog needs its layers and hidden columns")
    heads = heads or max(1.0, h / 128.0)
    kv = kv or (heads if gpt else min(8.0, heads))
    cfg: dict[str, Any] = dict(model_type="gpt_neox" if plain else "llama", hidden_size=int(h), num_hidden_layers=int(L),
                               num_attention_heads=int(heads), num_key_value_heads=int(kv), vocab_size=int(vocab),
                               head_dim=int(h // heads))
    if E and k:
        attn = L * (2 * h * h + 2 * h * kv * (h / heads))
        if ffn:     # Megatron's convention: without a separate expert width, ffn-hidden-size is each expert's
            f_e = ffn
            total = attn + 2 * vocab * h + L * E * 3 * h * f_e
            if params and abs(total / params - 1.0) > 0.15:
                notes_used.append(f"params_b={params / 1e9:g}B disagrees with the architecture columns "
                                  f"({total / 1e9:.1f}B with ffn_hidden {f_e:.0f} as the expert width): the "
                                  "columns are used")
        else:
            f_e = max(64.0, (params - attn - 2 * vocab * h) / (L * E * 3 * h))
        shared = max(0.0, (active - attn - 2 * vocab * h - L * k * 3 * h * f_e) / (L * 3 * h)) if active else 0.0
        cfg.update(model_type="qwen2_moe", num_experts=int(E), num_experts_per_tok=int(k),
                   moe_intermediate_size=int(f_e), shared_expert_intermediate_size=int(shared),
                   intermediate_size=int(f_e))
        notes_used.append(f"MoE expert width {f_e:.0f} ({'ffn_hidden' if ffn else 'solved from params_b'}) and "
                          f"shared width {shared:.0f} ({'solved from active_params_b' if active else 'none'})")
    else:
        cfg["intermediate_size"] = int(ffn or (ratio * h if gpt else round(ratio * h / 256) * 256))
    return spec_from_config(cfg, model_id=row.get("model") or "derived")


def row_model(row: dict[str, str], notes_used: list[str]) -> ModelSpec:
    try:
        model = get_model(row.get("model") or "")
    except UnknownNameError:
        return derive_spec(row, notes_used)
    layers = _num(row, "layers")
    if layers and int(layers) != model.layers:
        return reduced_variant(model, int(layers), notes_used)
    return model


def reduced_variant(model: ModelSpec, layers: int, notes_used: list[str]) -> ModelSpec:
    """A catalogued architecture cut to `layers` layers (a framework's benchmark script that keeps a model's widths
    and shortens its stack: MindSpeed-LLM's 16-layer DeepSeek-V2, say). A few leading dense layers stay; the layer
    kinds that alternate (dense and MoE as in Llama 4, sliding-window, linear-attention, compressed) keep their
    shares."""
    if not 0 < layers < model.layers:
        raise InputError("layers", f"{model.id} has {model.layers} layers; a reduced variant needs 1 to "
                                   f"{model.layers - 1} (leave the column blank for the whole model)")
    share = layers / model.layers
    upd: dict[str, Any] = {"layers": layers, "published_params_b": None, "published_active_params_b": None,
                           "aliases": (), "id": f"{model.id} ({layers} of its {model.layers} layers)"}
    for f in ("sliding_layers", "linear_layers", "csa_layers", "hca_layers"):
        upd[f] = int(round(getattr(model, f) * share))
    if model.is_moe:     # a few leading dense layers (DeepSeek's first_k_dense_replace) stay; interleaved ones scale
        leading = model.dense_layers * 4 < model.moe_layers
        upd["dense_layers"] = min(model.dense_layers, layers - 1) if leading else int(round(model.dense_layers * share))
        upd["moe_layers"] = layers - upd["dense_layers"]
    notes_used.append(f"{layers} of {model.id}'s {model.layers} layers (the layers column: a reduced variant)")
    return ModelSpec.model_validate({**model.model_dump(), **upd})    # afresh: model_copy would keep cached counts


# ---------------------------------------------------------------- row -> case
PER_DEVICE_RATES = ("tokens_per_s_per_gpu", "tflops_per_gpu", "mfu", "hfu")


def make_case(row: dict[str, str]) -> Case:
    """One CSV row -> Case. Raises InputError (invalid) or StockpileError (unsupported) with the reason."""
    metric, value = metric_and_value(row, METRICS, _num)
    notes = row.get("notes") or ""
    src, fw, causal, tf_rc = source_of(row)
    used: list[str] = []
    model = row_model(row, used)
    chip = get_chip(row.get("accelerator") or "")
    units = 1
    if chip.id.startswith("ascend-910c"):          # two dies per package; ranks and per-'p' figures are dies
        from stockpile.catalog.chips import per_die
        chip, units = per_die(chip, 2), 2
        used.append("Ascend 910C counted as 2 dies per card (ranks and per-device figures are dies)")
    precision = (row.get("precision") or "").strip().lower() or "bf16"
    if not row.get("precision"):
        used.append("precision bf16 (not stated)")
    precision = "bf16" if precision == "fp16" else precision
    if precision == "fp8" and not chip.has_native(eight_bit_dtype(chip)):
        raise StockpileError(f"{chip.id} has no sourced fp8 tensor peak for this fp8 recipe")
    if precision == "fp8" and eight_bit_dtype(chip) == "int8":
        used.append(f"8-bit GEMMs on {chip.id}'s {AQT_INT8}: a TPU without fp8 units; predicted, not fitted)")
    tokens = (_num(row, "tokens_b") or 0.0) * 1e9 or None
    if metric in ("gpu_hours", "days") and not tokens:
        raise StockpileError("a whole-run metric needs the token count (tokens_b), which the source does not give")
    seq = int(_num(row, "seq_len") or DEFAULT_SEQ.get(fw, 4096))
    if not row.get("seq_len"):
        used.append(f"sequence length {seq} ({fw} default; not stated)")
    fixed = {k: int(v) for k in ("tp", "pp", "dp", "ep", "cp") if (v := _num(row, k))}
    rc_text = (row.get("recompute") or "").strip().lower()
    for word, code in RECOMPUTE_WORDS.items():
        if rc_text.startswith(word):
            fixed["recompute"] = code
    mb = _note(notes, r"(?:MBS=|microbatch=|micro_bsz=|per_device_batch(?:_size)? |micro-batch-size[= ])(\d+)")
    local = _note(notes, r"local bs (\d+)")            # torchtitan: sequences per data-parallel rank
    if mb or (local and fixed.get("pp", 1) == 1):
        fixed["mb"] = mb or local or 1
    elif local and fw == "torchtitan":
        # torchtitan (2024) splits a rank's local batch into as many micro-batches as pipeline stages unless told
        # otherwise, and its interleaved schedule puts 2 stages on each rank (pipelining_utils at 9dec370)
        fixed["mb"] = max(local // fixed["pp"], 1)
        used.append(f"{fixed['pp']} micro-batches of {fixed['mb']} (torchtitan's default: one per pipeline stage)")
    vp = _note(notes, r"VP=(\d+)")
    per_vstage = _note(notes, r"num-layers-per-virtual-pipeline-stage[= ](\d+)")     # Megatron's flag
    if not vp and per_vstage and fixed.get("pp", 1) > 1:
        vp = max(model.layers // (fixed["pp"] * per_vstage), 1)
    if vp:
        fixed["vpp"] = vp
    elif re.search(r"schedule 1F1B|1F1B \+", notes):
        fixed["vpp"] = 1
    elif fw == "torchtitan" and re.search(r"Interleaved 1F1B", notes):
        fixed["vpp"] = 2
    fsdp = _note(notes, r"FSDP(\d+)")
    if fsdp and "dp" not in fixed:
        fixed["dp"] = fsdp
    if re.search(r"FULL_SHARD|FSDP\d|FSDP=[1-9]|ici_fsdp|\bFSDP,", notes):
        fixed["zero"] = 3
    elif re.search(r"SHARD_GRAD_OP", notes):
        fixed["zero"] = 2
    elif re.search(r"FSDP=0|zero1=", notes):
        fixed["zero"] = 1
    flags: dict[str, float] = {}
    if fw == "torchtitan":
        flags["fw_tp_overlap"] = 1.0 if re.search(r"async ?tp", notes, re.I) and "vanilla" not in notes else 0.0
        flags["fused"] = 1.0 if re.search(r"compile", notes) else 0.0
    if model.is_moe and fw != "maxtext" and re.search(r"\bDeepEP\b", notes) and not framework(fw).moe_sync:
        # DeepEP's normal (high-throughput) dispatch hands the received-token counts to the host (a Python list;
        # its README: "the CPU will wait for GPU's signal to arrive, so this is not compatible with CUDA graph",
        # deepseek-ai/DeepEP@0aaa674), so each MoE layer waits on the host as Megatron's dropless dispatcher does;
        # under XLA (MaxText) shapes are static and nothing waits
        flags["moe_sync"] = 1.0
        used.append("DeepEP dispatch: each MoE layer waits on the host for its received-token counts")
    dropping = _token_dropping(row, notes, model, chip.id, fw) if model.is_moe else None
    if dropping:
        flags["moe_capacity"] = float(dropping[0])
        used.append(f"token dropping at capacity factor {dropping[0]} with a dense dispatch ({dropping[1]})")
        if framework(fw).moe_sync:
            # a dispatch padded to capacity has static shapes: Megatron's token dispatcher then never copies the
            # expert token counts to the host (drop_and_pad keeps cuda_sync_point "no_sync"; token drop without
            # the pad still waits), so the dropless host stall does not apply
            flags["moe_sync"] = 0.0
    out_bw = None
    m = re.search(r"(\d+)\s*x\s*(\d+)\s*Gb", notes)
    node_gbps = int(m.group(1)) * int(m.group(2)) if m else _note(notes, r"(\d+) Gbps node-node")
    if node_gbps:                                  # a node's network, shared by its 8 GPUs
        out_bw = node_gbps * 1e9 / 8 / 8
        used.append(f"scale-out {out_bw * 8 / 1e9:.0f} Gb/s per GPU from the notes' node network")
    TrainChip.of(chip, out_bw=out_bw)             # a chip lacking a figure the model needs is unsupported
    mp = _note(notes, r"model-parallel size \(tp\*pp\)=(\d+)")
    gpus_val = _num(row, "num_accelerators")
    batch = _num(row, "global_batch_tokens")
    gbs = _note(notes, r"global bs (\d+) seqs")
    micro_num = _note(notes, r"micro_num=(\d+)")
    if batch is None and gbs:
        batch = float(gbs * seq)
    elif batch is None and local and "dp" in fixed:
        batch = float(local * fixed["dp"] * seq)
        used.append(f"global batch {local} sequences per data-parallel rank (local bs)")
    elif batch is None and micro_num and mb and "dp" in fixed:
        batch = float(micro_num * mb * fixed["dp"] * seq)
    if gpus_val is None and model.is_moe and metric in PER_DEVICE_RATES and not fixed.keys() & {"tp", "pp", "dp", "ep"}:
        # an expert-parallel run's rate per device moves several-fold with its EP group and device count; a dense
        # model's does not, so only MoE rows need them stated
        raise StockpileError("an MoE run's per-device rate depends on its expert-parallel layout and device count, "
                             "and the source states neither (num_accelerators, tp/pp/ep)")
    if gpus_val is None:
        gpus, why = _default_gpus(model, chip, src, metric, fixed, mp, seq, precision, fw, tokens)
        used.append(f"{gpus} GPUs: {why}")
    else:
        gpus = int(gpus_val) * units
    if batch is None and metric == "step_time_s":
        raise InputError("global_batch_tokens", "a step_time_s row needs the global batch in tokens (a step is the "
                                                "batch over the tokens per second); give it or report tokens_per_s")
    if batch is None and metric in ("gpu_hours", "days"):
        batch = float(MAX_BATCH_TOKENS)
        used.append(f"global batch {MAX_BATCH_TOKENS / 2**20:.0f}M tokens (Llama 3 405B's; not stated)")
    elif batch is None:
        used.append("global batch chosen by the layout search (not stated)")
    if set(fixed) < {"tp", "pp", "dp", "ep", "cp", "mb", "recompute", "zero", "vpp"}:
        dims = ("tp", "pp", "dp", "ep", "cp", "mb", "recompute", "zero", "vpp")
        used.append("layout search filled " + ", ".join(d for d in dims if d not in fixed))
    job = make_job(model, chip, gpus, tokens=tokens, seq_len=seq, global_batch_tokens=batch,
                   precision=precision, framework=fw)
    if model.mtp_layers and (fw == "hai-llm" or re.search(r"w/ MTP", notes)):
        job = job.model_copy(update={"mtp": True})
        used.append(f"{model.mtp_layers} multi-token-prediction module(s) trained")
    if re.search(r"via secondary", f"{row.get('source_url', '')} {notes}", re.I):
        used.append(SECONDARY)
    return Case(row.get("id", ""), metric, float(value), src, job, causal, tf_rc, fixed, mp, flags, out_bw, used)


def _token_dropping(row: dict[str, str], notes: str, model: ModelSpec, chip_id: str, fw: str) -> tuple[str, str] | None:
    """(capacity factor, where it comes from) for an MoE run that drops tokens, else None: stated in the notes,
    or MaxText's tiering-table v6e Mixtral figures, which are its dropped Trillium recipes' (TIERING_DROPPED)."""
    cap = re.search(r"capacity[_ ]factor[ =:]*([0-9]*\.?[0-9]+)", notes)
    if cap and re.search(r"dropp", notes, re.I):
        return cap.group(1), "notes"
    if (fw == "maxtext" and chip_id.startswith("tpu-v6e") and model.id in TIERING_DROPPED
            and (row.get("source_url", "").endswith("docs/reference/models/tiering.md") or "_dropped" in notes)):
        return str(TIERING_DROPPED[model.id]), "MaxText's Trillium recipe for this model, whose step rate the table reports"
    return None


def _default_gpus(model: ModelSpec, chip: Any, src: str, metric: str, fixed: dict[str, int], mp: int | None,
                  seq: int, precision: str, fw: str, tokens: float | None) -> tuple[int, str]:
    """GPU count for a row that does not state it: the lab's published cluster for whole-run figures, else
    the smallest power of two (>= 8, one node) on which some layout fits (with dp as stated)."""
    lab = LAB_CLUSTERS.get((src, chip.id.split("-")[0]))
    if metric in ("gpu_hours", "days") and lab:
        return lab
    for g in (2**i for i in range(3, 17)):
        if fixed.get("dp") and g % fixed["dp"]:
            continue
        try:
            job = make_job(model, chip, g, tokens=None, seq_len=seq, global_batch_tokens=None, precision=precision,
                           framework=fw)
            out, _, best = search(job, fixed={k: v for k, v in fixed.items() if k in ("dp", "recompute")},
                                  model_parallel=mp, require_fit=False)
        except StockpileError:
            continue
        if bool(out["fits"][best]):
            if metric in ("gpu_hours", "days") and tokens:
                days = tokens / float(out["tokens_per_s"][best]) / 86400
                if days > 90:
                    continue
                return g, f"the smallest power-of-two count that fits and {UNSTATED_CLUSTER}"
            return g, "the smallest power-of-two count (from one node) on which a layout fits (not stated)"
    raise StockpileError(f"{model.id} fits no layout up to 65,536 x {chip.id}")


# ---------------------------------------------------------------- prediction
def predict_case(case: Case, cal: TrainCalibration) -> tuple[float, list[str]]:
    """The row's metric under `cal`, and notes (a measured layout our memory model says does not fit)."""
    job = case.job
    p = cal.params(job.chip.family, job.framework)
    out, sp, i = search(job, params=p, fixed=case.fixed, model_parallel=case.model_parallel, flags=case.flags,
                        out_bw=case.out_bw, require_fit=False)
    notes = []
    if not bool(out["fits"][i]):
        notes.append(f"memory model: this layout needs {out['memory']['total'][i] / 2**30:.0f} GB per device "
                     f"({job.chip.memory_bytes / 2**30:.0f} GB)")
    tps = float(out["tokens_per_s"][i])
    per_gpu = tps / job.gpus
    mc = TrainConsts.of(job.model, mtp=job.mtp)
    peak = job.chip.peak_flops("fp8" if job.precision == "fp8" else "bf16")
    seq = float(job.seq_len)
    mflops = float(model_flops_per_token(mc, seq, causal=case.causal))
    hflops = float(hardware_flops_per_token(mc, seq, float(sp["recompute"][i]), causal=case.causal,
                                            rc_frac=float(sp["rc_frac"][i])))
    m = case.metric
    if m in ("gpu_hours", "days"):
        g = job_goodput(job.gpus, job.model.params)
        hours = (job.tokens or 0.0) / tps / 3600.0 / g.goodput
        return (hours * job.gpus if m == "gpu_hours" else hours / 24.0), notes
    if m == "step_time_s":
        return float(job.global_batch_tokens or 0.0) / tps, notes
    value = {"tokens_per_s": tps, "tokens_per_s_per_gpu": per_gpu, "mfu": per_gpu * mflops / peak,
             "hfu": per_gpu * hflops / peak,
             "tflops_per_gpu": per_gpu * (hflops if case.tflops_recompute else mflops) / 1e12}[m]
    return value, notes


def prepare_rows(rows: list[dict[str, str]]) -> list[Case | Exception]:
    out: list[Case | Exception] = []
    for row in rows:
        try:
            out.append(make_case(row))
        except (StockpileError, MissingFigureError) as exc:
            out.append(exc)
    return out


def predict_training_rows(rows: list[dict[str, str]], calibration: TrainCalibration | None = None,
                          cases: list[Case | Exception] | None = None) -> list[dict[str, Any]]:
    """One record per CSV row, as in `validate --json`: id, metric, measured, predicted, error, status
    ('ok' | 'unsupported' | 'invalid'), reason (when not ok) and assumed (defaults the row took)."""
    cal = calibration or load_training_calibration()
    cases = cases if cases is not None else prepare_rows(rows)
    from stockpile.calibration.fit_inference import publication_of
    fitted = fitted_training_publications()     # their rows carry the in-sample band; other sources a new one's
    out: list[dict[str, Any]] = []
    for row, case in zip(rows, cases):
        rec: dict[str, Any] = {"id": row.get("id", ""), "metric": row.get("metric", ""),
                               "measured": float_or_none(row.get("value"))}
        if isinstance(case, Exception):
            rec.update(predicted=None, error=None, status=status_of(case), reason=str(case))
        else:
            try:
                v, notes = predict_case(case, cal)
            except StockpileError as exc:
                rec.update(predicted=None, error=None, status=status_of(exc), reason=str(exc))
                out.append(rec)
                continue
            ok = np.isfinite(v) and v > 0
            rec.update(predicted=round(v, 6) if ok else None,
                       error=round((v - case.measured) / case.measured, 6) if ok else None,
                       status=OK if ok else UNSUPPORTED, source=case.source)
            if not ok:
                rec["reason"] = "no prediction"
            else:
                b = training_band(case.job.chip.family, case.metric, case.job.model.is_moe,
                                  seen=publication_of(row) in fitted)
                if b is not None:
                    rec.update(predicted_p10=round(v * b[0], 6), predicted_p90=round(v * b[1], 6))
            if case.assumed or notes:
                rec["assumed"] = case.assumed + notes
        out.append(rec)
    return out


