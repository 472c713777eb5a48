"""Training performance model: FLOPs, memory and step time of one parallel layout (numpy-vectorised).

Every function takes scalars or arrays (one entry per layout) and broadcasts, so the layout search and the
validation of a whole CSV are single numpy passes. Sources:
Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using Megatron-LM"
(SC'21, arXiv:2104.04473): PTD-P, 1F1B and interleaved schedules and their bubble, the FLOPs formula.
Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models" (arXiv:2205.05198):
sequence parallelism, selective recompute, activation memory per layer.
Rajbhandari et al. 2020, "ZeRO" (SC'20, arXiv:1910.02054): sharded optimizer states, gradients, parameters.
DeepSeek-AI 2024, "DeepSeek-V3 Technical Report" (arXiv:2412.19437): FP8 with fine-grained scaling, DualPipe.
Equations and assumptions: docs/training-model.md.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field

from stockpile.catalog.chips import Chip
from stockpile.catalog.models import ModelSpec
from stockpile.errors import InputError, MissingFigureError
from stockpile.perf.calibration import Selection
from stockpile.perf.frameworks import FAMILY_GROUPS, kernel_key

F = Any                                    # float or np.ndarray: every formula broadcasts
RECOMPUTE = ("none", "selective", "full")  # codes 0, 1, 2 in the arrays


def recompute_shares(recompute: F, rc_frac: F = 1.0) -> tuple[F, F]:
    """(share of a stage's layers under full recompute, 1 where selective recompute): full recompute of only
    some layers (Megatron's --recompute-method block --recompute-num-layers N; NeMo's
    activations_checkpoint_num_layers) is code 2 with `rc_frac` = N / layers per stage; the others recompute
    nothing."""
    full = np.where(recompute >= 2, rc_frac, 0.0)
    return full, np.where((recompute >= 1) & (recompute < 2), 1.0, 0.0)

# ---------------------------------------------------------------- calibration parameters
GLOBAL_DEFAULTS: dict[str, float] = {
    "attn_eff": 0.65,        # flash-attention throughput relative to a large GEMM
    "fp8_eff": 0.75,         # fp8 GEMM efficiency relative to bf16 (scaling, smaller tiles)
    "mem_eff": 0.8,          # achieved fraction of HBM bandwidth in elementwise kernels
    "w_half": 96.0,          # GEMM inner width (per GPU) at which a GEMM reaches half its peak efficiency
    "m_half": 64.0,          # GEMM rows (tokens per expert) at half efficiency
    # non-GEMM HBM bytes per token, layer and hidden unit (fwd+bwd), counted, not fitted: norms, rotary, residual
    # adds move ~12 hidden-sized bf16 vectors forward and ~15 backward (SwiGLU, MoE permutes: own terms below)
    "elem_bytes": 60.0,
    "comm_eff": 0.7,         # achieved fraction of link bandwidth in collectives
    "comm_latency_s": 5e-6,  # per ring step of a collective
    "tp_overlap": 0.6,       # share of TP collectives hidden where the framework overlaps them
    "dp_overlap": 0.8,       # share of the overlap window that hides data-parallel traffic
    "ep_overlap": 0.5,       # share of EP all-to-all hidden where the framework overlaps it
    "moe_imbalance": 1.15,   # busiest expert rank's load / mean load
    "step_s": 0.02,          # per-step fixed cost: data loading, logging, gradient clipping
    "reserve_gb": 6.0,       # CUDA context, communication buffers, allocator fragmentation
    "fused_elem": 0.6,       # share of elementwise traffic left when a compiler fuses kernels
    "layer_s": 2e-4,         # host / kernel-launch time per layer per micro-batch (forward + backward)
    "moe_layer_s": 5e-4,     # extra per MoE layer: router, permutation, grouped-GEMM setup
    "jitter": 0.01,          # relative per-rank step-time noise; a synchronous step waits for the slowest
    # attention speed-up of a kernel written for Hopper's asynchronous tensor cores (cuDNN fused attention under
    # Transformer Engine, FlashAttention-3) over FlashAttention-2 on Hopper and Blackwell: 1.5-2x forward in the
    # FlashAttention-3 paper (arXiv:2407.08608 fig. 5)
    "attn_native": 1.5,
}
FAMILY_DEFAULTS: dict[str, float] = {"gemm_eff": 0.75}      # large-GEMM fraction of the dense peak
FRAMEWORK_DEFAULTS: dict[str, float] = {"kernel_eff": 1.0}  # framework kernel quality relative to the family
UNMEASURED = "unmeasured"   # what a framework without fitted rows takes: the fitted factors' median (by the fit)
@dataclass(frozen=True)
class TrainParams:
    gemm_eff: F
    kernel_eff: F
    attn_eff: F
    fp8_eff: F
    mem_eff: F
    w_half: F
    m_half: F
    elem_bytes: F
    comm_eff: F
    comm_latency_s: F
    tp_overlap: F
    dp_overlap: F
    ep_overlap: F
    moe_imbalance: F
    step_s: F
    reserve_gb: F
    fused_elem: F
    layer_s: F
    moe_layer_s: F
    jitter: F
    attn_native: F

    @classmethod
    def stack(cls, items: list["TrainParams"]) -> "TrainParams":
        return cls(**{f.name: np.array([getattr(i, f.name) for i in items]) for f in fields(cls)})


@dataclass
class TrainCalibration:
    global_: dict[str, float]
    families: dict[str, dict[str, float]]
    frameworks: dict[str, dict[str, float]]
    meta: dict[str, Any]

    def params(self, family: str, framework: str) -> TrainParams:
        fw = kernel_key(framework, family)
        # a port no row measures (Megatron as MindSpeed on Ascend) takes its parent's factor where the parent is
        # fitted, and the fitted factors' median only where neither is
        parent = kernel_key(framework, "") if fw != kernel_key(framework, "") else UNMEASURED
        vals = {**GLOBAL_DEFAULTS, **self.global_, **FAMILY_DEFAULTS,
                **self.families.get(FAMILY_GROUPS.get(family, family), {}),
                **FRAMEWORK_DEFAULTS, **self.frameworks.get(UNMEASURED, {}), **self.frameworks.get(parent, {}),
                **self.frameworks.get(fw, {})}
        return TrainParams(**{f.name: float(vals[f.name]) for f in fields(TrainParams)})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainCalibration":
        return cls(dict(d.get("global") or {}), dict(d.get("families") or {}), dict(d.get("frameworks") or {}),
                   dict(d.get("meta") or {}))


_selected_training: Selection[TrainCalibration] = Selection()


def load_training_calibration() -> TrainCalibration:
    """The profile selected with `use_training_calibration`, else the shipped fit."""
    chosen = _selected_training.current()
    return chosen if chosen is not None else _shipped_training_calibration()


def use_training_calibration(cal: TrainCalibration) -> AbstractContextManager[TrainCalibration]:
    return _selected_training.use(cal)


def read_training_calibration(path: str | Path) -> TrainCalibration:
    from stockpile.errors import InputError
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError("calibration", f"cannot read {path}: {exc}") from None
    if not isinstance(doc, dict) or "frameworks" not in doc:
        raise InputError("calibration", f"{path} is not a training calibration (stockpile calibrate --training)")
    return TrainCalibration.from_dict(doc)


@cache
def _shipped_training_calibration() -> TrainCalibration:
    """The shipped fit (``data/calibration/training.yaml``), or the priors when none is written."""
    path = resources.files("stockpile") / "data" / "calibration" / "training.yaml"
    if not path.is_file():
        return TrainCalibration({}, {}, {}, {"fitted": None})
    return TrainCalibration.from_dict(yaml.safe_load(path.read_text()) or {})


# ---------------------------------------------------------------- model and chip constants
@dataclass(frozen=True)
class TrainConsts:
    """Scalars of a model the formulas need; `stack` makes arrays to evaluate many models at once."""

    layers: F
    hidden: F
    vocab: F
    q_dim: F                # heads x query head dim
    kv_dim: F               # K+V elements per token per layer that context parallelism exchanges
    attn_coef: F            # attention-core forward FLOPs per (query, key) pair per layer
    full_layers: F          # layers with global softmax attention
    sliding_layers: F
    window: F
    p_dense: F              # GEMM weights outside routed experts, all layers (attention, dense FFN, shared)
    p_expert: F             # all routed experts, all layers
    p_total: F
    ffn_act: F              # activated FFN width per token (mean over layers)
    moe_frac: F             # share of layers that are MoE
    experts: F
    top_k: F
    ffn_expert: F
    mats: F                 # 3 for gated MLPs, 2 otherwise
    heads: F = 0.0          # query heads (the rows of an unfused attention's score matrix per token)
    mtp: F = 0.0            # multi-token-prediction modules trained (DeepSeek-V3: 1), on the last stage
    csa_layers: F = 0.0     # DeepSeek-V4 pooled attention (perf.operators.compressed_entries): CSA layers read
    csa_topk: F = 0.0       # the top-k of their s/csa_ratio pooled entries, HCA layers all s/hca_ratio of theirs
    hca_layers: F = 0.0
    csa_ratio: F = 1.0
    hca_ratio: F = 1.0

    @classmethod
    def of(cls, m: ModelSpec, *, mtp: bool = False) -> "TrainConsts":
        if m.is_mla:
            coef = 2.0 * m.heads * (m.qk_nope_head_dim + m.qk_rope_head_dim) + 2.0 * m.heads * m.v_head_dim
            kv = m.heads * (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim)
            q = m.heads * (m.qk_nope_head_dim + m.qk_rope_head_dim)
        else:
            coef = 2.0 * m.heads * (m.head_dim + m.value_dim)
            kv, q = m.kv_heads * (m.head_dim + m.value_dim), m.heads * m.head_dim
        moe = m.moe_layers if m.is_moe else 0
        ffn_act = (m.dense_layers * m.ffn_dense + moe * (m.experts_per_token * m.ffn_expert + m.ffn_shared)) / m.layers
        return cls(
            layers=float(m.layers), hidden=float(m.hidden), vocab=float(m.vocab), q_dim=float(q), kv_dim=float(kv),
            attn_coef=float(coef), full_layers=float(m.full_layers), sliding_layers=float(m.sliding_layers),
            window=float(max(m.sliding_window, 1)),
            p_dense=float(m.attn_params + m.dense_ffn_params + m.shared_expert_params + m.router_params),
            p_expert=float(m.expert_params if moe else 0.0), p_total=float(m.params), ffn_act=float(ffn_act),
            moe_frac=float(moe / m.layers), experts=float(max(m.experts, 1)), top_k=float(max(m.experts_per_token, 1)),
            ffn_expert=float(max(m.ffn_expert, 1)), mats=3.0 if m.gated_mlp else 2.0, heads=float(m.heads),
            mtp=float(m.mtp_layers if mtp else 0), csa_layers=float(m.csa_layers), csa_topk=float(m.csa_topk),
            hca_layers=float(m.hca_layers), csa_ratio=float(max(m.csa_ratio, 1)), hca_ratio=float(max(m.hca_ratio, 1)))

    @classmethod
    def stack(cls, items: list["TrainConsts"]) -> "TrainConsts":
        return cls(**{f.name: np.array([getattr(i, f.name) for i in items]) for f in fields(cls)})


@dataclass(frozen=True)
class TrainChip:
    peak_bf16: F
    peak_fp8: F             # the bf16 peak where the chip has no fp8 units
    mem_bw: F
    memory: F
    up_bw: F                # scale-up bandwidth per direction per chip
    out_bw: F               # scale-out bandwidth per chip
    domain: F               # chips per scale-up domain
    wgmma: F = 0.0          # 1: Hopper or Blackwell tensor cores, which attention kernels must be written for

    @classmethod
    def of(cls, c: Chip, *, out_bw: float | None = None) -> "TrainChip":
        """`out_bw` overrides the NIC figure (a measured cluster's network); a missing NIC is a share of the
        scale-up link (operators.NO_NIC_SCALEUP_SHARE), as for inference."""
        from stockpile.perf.operators import NO_NIC_SCALEUP_SHARE
        try:
            nic = out_bw or c.scaleout_bw
        except MissingFigureError:
            nic = c.scaleup_bw * NO_NIC_SCALEUP_SHARE
        return cls(peak_bf16=c.peak_flops("bf16"), peak_fp8=c.peak_flops(eight_bit_dtype(c)), mem_bw=c.mem_bw,
                   memory=c.memory_bytes, up_bw=c.scaleup_bw, out_bw=nic, domain=float(c.scaleup_size),
                   wgmma=float(FAMILY_GROUPS.get(c.family, c.family) in ("hopper", "blackwell")))

    @classmethod
    def stack(cls, items: list["TrainChip"]) -> "TrainChip":
        return cls(**{f.name: np.array([getattr(i, f.name) for i in items]) for f in fields(cls)})


def eight_bit_dtype(c: Chip) -> str:
    """The tensor dtype an 8-bit ("fp8") training recipe runs its GEMMs in: fp8 where the chip has fp8 units; on a
    TPU without them (v5e, v6e) int8, which is what MaxText's 8-bit recipes use there (AQT int8: the Trillium
    GPT-3 175B "fp8" recipe sets quantization=int8, tpu-recipes run_recipe.sh)."""
    if not c.has_native("fp8") and c.family == "tpu" and c.has_native("int8"):
        return "int8"
    return "fp8"


# ---------------------------------------------------------------- FLOPs per token
def attention_context(mc: TrainConsts, seq: F, *, causal: bool = True) -> F:
    """Keys each query attends, summed over layers: s/2 per causal layer (s under the non-causal
    convention some frameworks report), capped by the window on sliding-window layers."""
    full = seq / 2.0 if causal else seq
    slide = np.minimum(full, mc.window)
    pooled = mc.csa_layers * np.minimum(full / mc.csa_ratio, mc.csa_topk) + mc.hca_layers * full / mc.hca_ratio
    return mc.full_layers * full + mc.sliding_layers * slide + pooled


def model_flops_per_token(mc: TrainConsts, seq: F, *, causal: bool = True) -> F:
    """Model FLOPs per token, forward + backward: 6 N_active + 3 x attention-core forward.

    Narayanan et al. 2021 eq. (3) per token, generalised to GQA/MLA, gated and MoE FFNs and untied heads:
    N_active counts the GEMM weights a token touches (attention, dense FFN, top-k experts, lm head)."""
    n_act = mc.p_dense + mc.p_expert * mc.top_k / mc.experts + mc.vocab * mc.hidden + mtp_params(mc)
    return 6.0 * n_act + 3.0 * mc.attn_coef * attention_context(mc, seq, causal=causal) * (1.0 + mc.mtp / mc.layers)


def mtp_params(mc: TrainConsts) -> F:
    """GEMM weights a token touches in the MTP modules (DeepSeek-V3 sec. 2.2): per module one mean layer, the
    2h x h projection and the shared output head again."""
    layer = (mc.p_dense + mc.p_expert * mc.top_k / mc.experts) / mc.layers
    return mc.mtp * (layer + 2.0 * mc.hidden**2 + mc.vocab * mc.hidden)


def hardware_flops_per_token(mc: TrainConsts, seq: F, recompute: F, *, causal: bool = True, rc_frac: F = 1.0) -> F:
    """Model FLOPs plus what activation recompute repeats: selective repeats the attention core forward,
    full repeats every layer's forward (the lm head is not recomputed). Korthikanti et al. 2022 sec. 5."""
    att = mc.attn_coef * attention_context(mc, seq, causal=causal)
    lin = 2.0 * (mc.p_dense + mc.p_expert * mc.top_k / mc.experts)
    full, sel = recompute_shares(recompute, rc_frac)
    extra = full * (lin + att) + sel * att
    return model_flops_per_token(mc, seq, causal=causal) + extra


# ---------------------------------------------------------------- memory per GPU
def local_params(mc: TrainConsts, tp: F, pp: F, ep: F) -> tuple[F, F]:
    """(dense, expert) parameters held by one GPU before ZeRO sharding: dense weights split by TP and PP,
    routed experts by EP and PP (expert TP = 1); embeddings and head split by TP."""
    return (mc.p_total - mc.p_expert) / (tp * pp), mc.p_expert / (ep * pp)


def activation_bytes_per_token_layer(mc: TrainConsts, recompute: F, rc_frac: F = 1.0) -> F:
    """Stored activation bytes per token per layer in bf16 (flash attention keeps no score matrix).

    Korthikanti et al. 2022 eq. (2) without the s^2 term, generalised: attention stores its inputs, Q/K/V and
    output (2(4h + q + kv)); the FFN its input, the up/gate outputs and the activation output. Selective
    recompute drops the activation-function output, full recompute keeps only the layer input (2h); the
    mean over a stage's layers where only a share `rc_frac` of them is fully recomputed."""
    h = mc.hidden
    attn = 2.0 * (4.0 * h + mc.q_dim + mc.kv_dim)
    ffn_in = 2.0 * 2.0 * h * (1.0 - mc.moe_frac) + mc.moe_frac * 2.0 * h * (1.0 + mc.top_k)
    ffn = ffn_in + 2.0 * mc.mats * mc.ffn_act
    full = attn + ffn
    sel = full - 2.0 * mc.ffn_act
    share, selective = recompute_shares(recompute, rc_frac)
    return share * 2.0 * h + (1.0 - share) * np.where(selective > 0, sel, full)


def memory_per_gpu(mc: TrainConsts, cc: TrainChip, p: TrainParams, *, tp: F, pp: F, dp: F, ep: F, cp: F,
                   mb: F, recompute: F, zero: F, vpp: F, micro_batches: F, seq: F, fp8: F,
                   dualpipe: F = 0.0, rc_frac: F = 1.0, grad_bytes: F = 4.0) -> dict[str, F]:
    """Bytes per GPU on the busiest (first) pipeline stage (Rajbhandari et al. 2020; Korthikanti et al. 2022).

    Weights bf16 (2 B) plus an fp8 copy in fp8 training, main gradients (`grad_bytes`: fp32, 4 B, unless the
    framework reduces them in bf16), Adam fp32 master weights
    and two moments (12 B); ZeRO-1 shards the optimizer over the data-parallel (and CP) ranks, ZeRO-2 also
    the gradients, ZeRO-3/FSDP also the weights (plus two gathered layers). In-flight micro-batches: the
    first 1F1B stage holds min(pp, m); interleaving adds (pp-1)/(pp v) (Narayanan et al. 2021 sec. 2.2)."""
    dense, expert = local_params(mc, tp, pp, ep)
    shard_d, shard_e = dp * cp, np.maximum(dp * cp * tp / ep, 1.0)
    z3 = zero >= 3
    copies = 1.0 + dualpipe                                   # DualPipe keeps two copies of the weights
    w_bytes = 2.0 + np.where(fp8 > 0, 1.0, 0.0)
    weights = copies * w_bytes * np.where(z3, dense / shard_d + expert / shard_e, dense + expert)
    weights = weights + np.where(z3, 2.0 * 2.0 * (dense + expert) / np.maximum(mc.layers / pp, 1.0), 0.0)
    grads = grad_bytes * np.where(zero >= 2, dense / shard_d + expert / shard_e, dense + expert)
    optim = 12.0 * np.where(zero >= 1, dense / shard_d + expert / shard_e, dense + expert)
    tokens = mb * seq / (cp * tp)                             # SP splits stored activations by TP
    in_flight = np.where(pp > 1, np.minimum(pp, micro_batches) * (1.0 + (pp - 1.0) / (pp * vpp)
                                                                    * (vpp > 1)), 1.0)
    per_layer = activation_bytes_per_token_layer(mc, recompute, rc_frac) * tokens
    acts = per_layer * (mc.layers / pp) * in_flight
    # a recomputed layer's full activations live again during its backward
    acts = acts + np.where(recompute_shares(recompute, rc_frac)[0] > 0,
                           activation_bytes_per_token_layer(mc, 0.0) * tokens, 0.0)
    logits = mb * seq / cp * mc.vocab / tp * 6.0              # bf16 logits + fp32 softmax, last stage
    other = np.where(pp > 1, 0.0, logits) + p.reserve_gb * 2**30
    total = weights + grads + optim + acts + other
    return {"weights": weights, "gradients": grads, "optimizer": optim, "activations": acts, "other": other,
            "total": total, "capacity": cc.memory + 0.0 * total}


# ---------------------------------------------------------------- collectives
def _ring(cc: TrainChip, p: TrainParams, group: F, per_domain: F, nbytes: F, passes: float, calls: F = 1.0) -> F:
    """`passes` x (g-1)/g x S over a group with `per_domain` ranks in each scale-up domain, issued as `calls`
    collectives: the domain part over the scale-up link, the rest over each rank's NIC carrying 1/per_domain
    of the data (rail-aligned hierarchical ring, NCCL-style; Thakur et al. 2005), plus a latency per step:
    d-1 ring steps in the domain, 2 log2(n) tree steps across domains. passes = 2 for all-reduce, 1 for
    reduce-scatter or all-gather."""
    g = np.maximum(group, 1.0)
    d = np.clip(per_domain, 1.0, g)
    n = g / d
    t = passes * ((d - 1.0) / d * nbytes / cc.up_bw + (n - 1.0) / n * nbytes / d / cc.out_bw) / p.comm_eff
    return np.where(g > 1, t + calls * passes * p.comm_latency_s * (d - 1.0 + 2.0 * np.log2(n)), 0.0)


def _alltoall(cc: TrainChip, p: TrainParams, group: F, per_domain: F, nbytes: F) -> F:
    """Each rank sends `nbytes` spread evenly over the group: the in-domain share over scale-up, the rest
    over the NIC, in parallel."""
    g = np.maximum(group, 1.0)
    d = np.clip(per_domain, 1.0, g)
    t = np.maximum(nbytes * (d - 1.0) / g / cc.up_bw, nbytes * (g - d) / g / cc.out_bw) / p.comm_eff
    return np.where(g > 1, t + 2.0 * p.comm_latency_s * np.sqrt(g), 0.0)


# ---------------------------------------------------------------- step time
# Extra HBM bytes per token and layer (forward + backward) when norms, rotary and the gated activation run as
# eager PyTorch ops instead of fused kernels, counted op by op (docs/training-model.md, "Eager PyTorch"):
# RMSNorm written as x.float() -> pow -> mean -> x*rsqrt -> type_as -> *weight is 36 B per element forward and
# ~56 B backward against 4 and 6 B fused, twice per layer; rotary through complex fp32 is 20 B per q/k element
# each way against 4 B; SwiGLU as silu then mul is 10 + 18 B per FFN unit against 6 + 10 B.
EAGER_NORM_BYTES = 2.0 * (36.0 - 4.0 + 56.0 - 6.0)
EAGER_ROPE_BYTES = 2.0 * (20.0 - 4.0)
EAGER_GLU_BYTES = (10.0 - 6.0) + (18.0 - 10.0)


def step_time(mc: TrainConsts, cc: TrainChip, p: TrainParams, *, tp: F, pp: F, dp: F, ep: F, cp: F, mb: F,
              recompute: F, zero: F, vpp: F, seq: F, batch_tokens: F, fp8: F, fw_sp: F = 1.0,
              fw_tp_overlap: F = 1.0, fw_dp_overlap: F = 1.0, fw_ep_overlap: F = 0.0, dualpipe: F = 0.0,
              fused: F = 0.0, eager: F = 0.0, flash: F = 1.0, moe_sync: F = 1.0, moe_capacity: F = 0.0,
              rc_frac: F = 1.0, fw_grad_bytes: F = 4.0, fw_native_attn: F = 0.0) -> dict[str, F]:
    """Seconds per optimizer step and its parts, for arrays of layouts.

    One micro-batch on the busiest (last) stage: GEMMs at peak x efficiency(width, rows), flash attention,
    HBM-bound elementwise work and fp8 casts, per-layer launch overhead, and the exposed share of TP, EP and
    CP communication; the lm head (and MTP modules) sit on the last stage. The pipeline runs m micro-batches
    plus a bubble of (pp-1)/v micro-batch times (Narayanan et al. 2021 eq. (1)-(2); DualPipe halves it).
    Then the exposed data-parallel traffic, the optimizer update, and the wait for the slowest rank."""
    h, L = mc.hidden, mc.layers
    m = batch_tokens / (dp * mb * seq)
    T = mb * seq / cp                                     # tokens of one micro-batch on one CP rank
    rc = recompute
    ls = L / pp                                           # layers per stage
    peak = np.where(fp8 > 0, cc.peak_fp8, cc.peak_bf16)
    base = p.gemm_eff * p.kernel_eff * np.where(fp8 > 0, p.fp8_eff, 1.0)
    eff_d = base * (h / tp) / (h / tp + p.w_half)
    rows_e = T / tp * mc.top_k * ep / mc.experts         # tokens per local expert
    eff_e = base * mc.ffn_expert / (mc.ffn_expert + p.w_half) * rows_e / (rows_e + p.m_half)
    full, sel = recompute_shares(rc, rc_frac)           # share of layers fully recomputed; selective
    rc_lin = 1.0 + full / 3.0
    f_dense = 6.0 * T * mc.p_dense / (tp * pp) * rc_lin
    # dropless experts wait for the busiest (moe_imbalance); dropping at capacity c pads each expert to c x its mean
    # load, and a one-hot dispatch + combine costs 4 c s k h FLOPs per token and MoE layer forward (MaxText)
    load = np.where(moe_capacity > 0, moe_capacity, p.moe_imbalance)
    f_exp = 6.0 * T * mc.p_expert * mc.top_k / mc.experts / (tp * pp) * load * rc_lin
    f_disp = 12.0 * moe_capacity * seq * mc.top_k * h * T * mc.moe_frac * ls / tp * rc_lin    # 0 when dropless
    f_head = 6.0 * T * (mc.vocab * h + mtp_params(mc)) / tp
    t_gemm = (f_dense + f_head + f_disp) / (peak * eff_d) + np.where(mc.moe_frac > 0, f_exp / (peak * eff_e), 0.0)
    f_att = 3.0 * T * mc.attn_coef * attention_context(mc, seq) * (1.0 / pp + mc.mtp / L) / tp
    native = np.where(fw_native_attn * cc.wgmma > 0, p.attn_native, 1.0)
    t_att = f_att * (1.0 + (full + sel) / 3.0) / (cc.peak_bf16 * p.gemm_eff * p.kernel_eff * p.attn_eff * native)
    # without a fused attention kernel the whole score matrix (heads x s x s, causal mask or not) goes through
    # HBM in 16-bit: forward writes QK^T, the fused softmax reads and writes it, dropout reads, writes and keeps
    # its mask, PV reads it (~13 B per score); backward ~19 B more; recomputing attention repeats the forward
    scores = T * mc.heads / tp * seq * mc.full_layers / pp
    t_att = t_att + (1.0 - flash) * scores * (32.0 + 13.0 * (full + sel)) / (cc.mem_bw * p.mem_eff)
    # HBM-bound work: norms, residuals, rotary, activation functions, MoE permutations; fp8 casts
    tok_sp = T / np.where(fw_sp > 0, tp, 1.0)
    elem = p.elem_bytes * h + 18.0 * mc.ffn_act + mc.moe_frac * 24.0 * mc.top_k * h
    # eager PyTorch (not compiled): each op of a hand-written RMSNorm, complex rotary and SwiGLU is its own kernel
    # through HBM in fp32 where it upcasts; the extra bytes over the fused kernels the count above assumes
    elem = elem + eager * (1.0 - fused) * (EAGER_NORM_BYTES * h + EAGER_ROPE_BYTES * (mc.q_dim + 0.5 * mc.kv_dim)
                                           + EAGER_GLU_BYTES * mc.ffn_act * (mc.mats > 2))
    elem = elem * np.where(fused > 0, p.fused_elem, 1.0) * rc_lin
    cast = np.where(fp8 > 0, 6.0 * (2.0 * h + mc.q_dim + mc.ffn_act), 0.0)
    t_elem = tok_sp * (ls + mc.mtp) * (elem + cast) / (cc.mem_bw * p.mem_eff)
    t_launch = (ls + mc.mtp) * (p.layer_s + mc.moe_frac * p.moe_layer_s * moe_sync) * rc_lin
    # tensor parallel: per layer 2 all-reduce equivalents forward (1 in MoE layers: expert TP = 1), as many
    # backward, again forward under full recompute; exposed unless the framework overlaps them
    n_tp = (2.0 - mc.moe_frac) * (2.0 + full) * (ls + mc.mtp)
    t_tp = _ring(cc, p, tp, np.minimum(tp, cc.domain), T * h * 2.0, 2.0) * n_tp
    # overlapping TP collectives with the GEMMs (Transformer Engine's userbuffers, async TP) needs the group inside
    # one NVLink domain: a TP group across nodes pays its collectives in full
    t_tp = t_tp * (1.0 - p.tp_overlap * fw_tp_overlap * (tp <= cc.domain))
    # expert parallel: dispatch + combine forward and backward (fp8 dispatch in fp8 training)
    a2a = _alltoall(cc, p, ep, np.minimum(ep, cc.domain), T / tp * mc.top_k * h * np.where(fp8 > 0, 1.5, 2.0))
    t_ep = mc.moe_frac * (ls + mc.mtp) * (4.0 + 2.0 * full) * a2a
    t_ep = t_ep * np.where(dualpipe > 0, 0.0, 1.0 - p.ep_overlap * fw_ep_overlap)
    # context parallel (ring attention): the local K/V travels cp-1 hops forward, K/V and dK/dV backward,
    # hidden behind the attention core where it is longer
    per_dom_cp = np.clip(cc.domain / tp, 1.0, cp)
    hop = T * mc.kv_dim * 2.0 / tp / np.where(per_dom_cp >= cp, cc.up_bw, cc.out_bw) / p.comm_eff
    t_cp = np.where(cp > 1, np.maximum(3.0 * (cp - 1.0) * (hop + p.comm_latency_s) * ls - t_att, 0.0), 0.0)
    # pipeline hand-offs: activations forward, gradients backward, per virtual stage
    bw_pp = np.where(tp * cp * dp * pp <= cc.domain, cc.up_bw, cc.out_bw)
    t_p2p = np.where(pp > 1, 2.0 * vpp * (p.comm_latency_s + T / tp * h * 2.0 / (bw_pp * p.comm_eff)), 0.0)
    t_mb = t_gemm + t_att + t_elem + t_launch + t_tp + t_ep + t_cp + t_p2p
    bubble = (pp - 1.0) / vpp * np.where(dualpipe > 0, 0.5, 1.0)
    t_pipe = (m + bubble) * t_mb
    # data parallel (one bucket per layer): ZeRO-0 all-reduces fp32 gradients; ZeRO-1/2 reduce-scatter them
    # and all-gather bf16 weights; ZeRO-3/FSDP gathers weights forward and backward and reduce-scatters
    # gradients per micro-batch. Hidden behind the last micro-batch (ZeRO-3: every micro-batch) when overlapped.
    dense, expert = local_params(mc, tp, pp, ep)
    g_d, g_e = dp * cp, np.maximum(dp * cp * tp / ep, 1.0)
    k_d, k_e = np.maximum(cc.domain / (tp * cp), 1.0), np.maximum(cc.domain / ep, 1.0)

    def dp_time(nbytes_per_param: float, passes: float) -> F:
        return (_ring(cc, p, g_d, k_d, dense * nbytes_per_param, passes, ls)
                + np.where(mc.moe_frac > 0, _ring(cc, p, g_e, k_e, expert * nbytes_per_param, passes, ls), 0.0))

    g = fw_grad_bytes
    t_dp = np.where(zero >= 3, m * (2.0 * dp_time(2.0, 1.0) + dp_time(g, 1.0)),
                    np.where(zero >= 1, dp_time(g, 1.0) + dp_time(2.0, 1.0), dp_time(g, 2.0)))
    window = np.where(zero >= 3, m * t_mb, t_mb) * p.dp_overlap * fw_dp_overlap
    t_dp_exp = np.maximum(t_dp - window, 0.0)
    # optimizer: Adam over the local shard, HBM-bound (~30 B per parameter); fp8 weight casts once per step
    p_opt = np.where(zero >= 1, dense / g_d + expert / g_e, dense + expert)
    t_opt = (30.0 * p_opt + np.where(fp8 > 0, 6.0, 0.0) * (dense + expert)) / (cc.mem_bw * p.mem_eff)
    work = t_pipe + t_dp_exp + t_opt + p.step_s
    t_wait = work * p.jitter * np.sqrt(2.0 * np.log(np.maximum(tp * pp * dp * cp, 1.0)))
    return {"step": work + t_wait, "micro_batches": m, "t_mb": t_mb, "gemm": m * t_gemm, "attention": m * t_att,
            "elementwise": m * (t_elem + t_launch), "tp_comm": m * t_tp, "ep_comm": m * t_ep, "cp_comm": m * t_cp,
            "pp_p2p": m * t_p2p, "pp_bubble": bubble * t_mb, "dp_comm": t_dp_exp, "optimizer": t_opt + p.step_s,
            "straggler": t_wait}


# ---------------------------------------------------------------- typed inputs and results
class TrainLayout(BaseModel):
    """A parallel layout. gpus = tp x pp x dp x cp; EP splits the experts over tp x dp x cp ranks."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tp: int = Field(1, ge=1)
    pp: int = Field(1, ge=1)
    dp: int = Field(1, ge=1)
    ep: int = Field(1, ge=1)
    cp: int = Field(1, ge=1)
    micro_batch: int = Field(1, ge=1)
    recompute: Literal["none", "selective", "full"] = "none"
    # full recompute of only this many layers per pipeline stage (Megatron --recompute-method block
    # --recompute-num-layers); None: every layer
    recompute_layers: int | None = Field(None, ge=1)
    zero: int = Field(1, ge=0, le=3)
    vpp: int = Field(1, ge=1)

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp * self.cp

    @property
    def schedule(self) -> str:
        return "interleaved-1f1b" if self.vpp > 1 else ("1f1b" if self.pp > 1 else "none")


class TrainJob(BaseModel):
    """What to train, on what, and how much: the input of `stockpile train`."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    model: ModelSpec
    chip: Chip
    gpus: int = Field(ge=1)
    tokens: float | None = Field(None, gt=0)
    seq_len: int = Field(4096, ge=16)
    global_batch_tokens: float | None = Field(None, gt=0)
    precision: Literal["bf16", "fp16", "fp8"] = "bf16"
    framework: str = "megatron"
    mtp: bool = False                       # train the model's multi-token-prediction modules (DeepSeek-V3)
    pue: float = Field(1.2, ge=1.0)


class TrainingEstimate(BaseModel):
    """Predicted training performance of one layout (all rates per second; memory per GPU in GB)."""

    model: str
    chip: str
    gpus: int
    precision: str
    framework: str
    layout: dict[str, Any]
    seq_len: int
    global_batch_tokens: float
    micro_batches: float
    step_time_s: float
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    tflops_per_gpu: float
    mfu: float
    hfu: float
    model_flops_per_token: float
    memory_gb: dict[str, float]
    fits: bool
    over_memory_gb: float = 0.0
    time_breakdown_s: dict[str, float] = {}
    tokens: float | None = None
    gpu_hours: float | None = None
    days: float | None = None
    goodput: float | None = None
    energy_kwh: float | None = None
    evaluated: int = 1
    limits: list[str] = []
    notes: list[str] = []
    band: dict[str, list[float]] | None = None   # metric -> [p10, p90] from the validated error of its regime
    band_note: str | None = None


# ---------------------------------------------------------------- evaluation
def evaluate(mc: TrainConsts, cc: TrainChip, p: TrainParams, flags: dict[str, F], *, tp: F, pp: F, dp: F,
             ep: F, cp: F, mb: F, recompute: F, zero: F, vpp: F, seq: F, batch_tokens: F, fp8: F,
             rc_frac: F = 1.0) -> dict[str, F]:
    """Step time, throughput, MFU/HFU and memory for arrays of layouts (one pass, no loop); `rc_frac` is the
    share of a stage's layers that full recompute (code 2) covers."""
    kw = dict(tp=tp, pp=pp, dp=dp, ep=ep, cp=cp, mb=mb, recompute=recompute, zero=zero, vpp=vpp, rc_frac=rc_frac)
    t = step_time(mc, cc, p, seq=seq, batch_tokens=batch_tokens, fp8=fp8, **flags, **kw)
    mem = memory_per_gpu(mc, cc, p, micro_batches=t["micro_batches"], seq=seq, fp8=fp8, dualpipe=flags["dualpipe"],
                         grad_bytes=flags.get("fw_grad_bytes", 4.0), **kw)
    gpus = tp * pp * dp * cp
    tps = batch_tokens / t["step"]
    peak = np.where(fp8 > 0, cc.peak_fp8, cc.peak_bf16)
    mflops = model_flops_per_token(mc, seq)
    hflops = hardware_flops_per_token(mc, seq, recompute, rc_frac=rc_frac)
    return {**t, "memory": mem, "fits": mem["total"] <= mem["capacity"], "gpus": gpus, "tokens_per_s": tps,
            "tokens_per_s_per_gpu": tps / gpus, "model_flops_per_token": mflops,
            "tflops_per_gpu": tps / gpus * mflops / 1e12, "mfu": tps / gpus * mflops / peak,
            "hfu": tps / gpus * hflops / peak}


def check_layout(job: TrainJob, layout: TrainLayout) -> None:
    """Raise InputError for parallel degrees that cannot describe `job` (a clear message, no traceback)."""
    m = job.model
    if layout.gpus != job.gpus:
        raise InputError("layout", f"tp x pp x dp x cp = {layout.gpus} but the job has {job.gpus} GPUs")
    if m.heads % layout.tp:
        raise InputError("tp", f"tp={layout.tp} does not divide the {m.heads} attention heads of {m.id}")
    if layout.pp > m.layers:
        raise InputError("pp", f"pp={layout.pp} exceeds the {m.layers} layers of {m.id}")
    if layout.ep > 1 and (not m.is_moe or m.experts % layout.ep or (layout.tp * layout.dp * layout.cp) % layout.ep):
        raise InputError("ep", f"ep={layout.ep} must divide the experts ({m.experts}) and tp x dp x cp "
                         f"({layout.tp * layout.dp * layout.cp}) of an MoE model")
    if job.seq_len % (2 * layout.cp) and layout.cp > 1:
        raise InputError("cp", f"cp={layout.cp} must split the sequence ({job.seq_len}) into 2 x cp chunks")
    if layout.recompute_layers is not None and layout.recompute != "full":
        raise InputError("recompute_layers", "counts layers under full recompute: set recompute to full, or leave "
                         "recompute_layers out")
