"""Per-operator time of one pipeline stage on one GPU, vectorised over configurations (numpy).

Every operator is a roofline: time = max(FLOPs / (peak x efficiency), bytes / (bandwidth x efficiency)),
with a GEMM efficiency that rises with the number of rows (tokens) it multiplies,
``eff(M) = gemm_eff x M / (M + m_half)``. Attention reads the KV cache (decode) or is compute-bound
(prefill, causal). MoE experts see the tokens routed to them; the weights read are those of the experts
actually hit. Tensor-parallel all-reduces and expert-parallel all-to-alls cross the scale-up link (or the
scale-out link where a group outgrows the scale-up domain). Equations: docs/inference-model.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stockpile.catalog.chips import Chip
from stockpile.catalog.models import ModelSpec
from stockpile.errors import MissingFigureError
from stockpile.perf.calibration import Params

ACT_BYTES = 2.0     # activations travel in bf16
F = np.ndarray


# Scale-out bandwidth assumed for a chip whose NIC figure is not sourced, as a share of its scale-up link
NO_NIC_SCALEUP_SHARE = 1.0 / 8.0


@dataclass(frozen=True)
class ModelConsts:
    """Scalars of a model that the operator formulas need (precomputed once per model)."""

    hidden: float
    layers: float
    softmax_layers: float
    dense_like_params: float        # attention projections + dense FFN + shared experts + linear-attn (all layers)
    expert_params: float            # all routed experts
    lm_head: float                  # V x d
    experts: float
    top_k: float
    moe_layers: float
    kv_elems: float                 # cached elements per token per softmax layer
    kv_split_max: float             # TP ranks that split the KV heads (MLA: 1, the latent is shared)
    full_layers: float
    sliding_layers: float
    window: float
    dec_attn_coef: float            # attention FLOPs per (query token x context token x layer), decode
    pre_attn_coef: float            # same for prefill
    heads: float
    sparse_topk: float
    index_bytes: float              # DSA indexer key bytes per token per layer
    index_coef: float               # DSA indexer FLOPs per (query x context token x layer)
    linear_state_bytes: float       # per sequence, all linear-attention layers
    expert_width: float             # intermediate size of one routed expert (GEMM N dimension)
    embed: float                    # embedding table parameters
    head_params: float              # untied lm-head parameters (0 when tied)
    dispatch_width: float = 0.0     # width of a token sent to an expert: hidden, or a latent MoE's latent width
    # DeepSeek-V4 compressed attention (zero elsewhere): CSA layers read the top-k of ctx/ratio pooled entries,
    # found by an fp4 indexer over all of them; HCA layers read all ctx/ratio entries; every layer's window is
    # the sliding part above (window_cache 1: engines keep only the window's raw entries)
    csa_layers: float = 0.0
    csa_ratio: float = 1.0
    csa_topk: float = 0.0
    hca_layers: float = 0.0
    hca_ratio: float = 1.0
    csa_index_coef: float = 0.0     # indexer FLOPs per (query x pooled entry) per CSA layer
    pooled_per_token: float = 0.0   # pooled entries one token of context adds, all layers (KV cache)
    pooled_index_bytes: float = 0.0  # indexer key bytes one token of context adds, all CSA layers (cache, scan)
    window_cache: float = 0.0
    mla: float = 0.0                # 1 for multi-head latent attention (DeepSeek's sparse kernels are MLA kernels)

    @classmethod
    def of(cls, m: ModelSpec) -> "ModelConsts":
        soft = m.layers - m.linear_layers
        dec: float
        pre: float
        if m.is_mla:
            dec = 2 * m.heads * (m.kv_lora_rank + m.qk_rope_head_dim) + 2 * m.heads * m.kv_lora_rank
            pre = 2 * m.heads * (m.qk_nope_head_dim + m.qk_rope_head_dim) + 2 * m.heads * m.v_head_dim
            split = 1.0
        else:
            dec = pre = 2.0 * m.heads * (m.head_dim + m.value_dim)     # QK^T and PV (values may be narrower)
            split = float(m.kv_heads)
        dense_like = m.attn_params + m.dense_ffn_params + m.shared_expert_params + m.router_params
        return cls(
            hidden=float(m.hidden), layers=float(m.layers), softmax_layers=float(soft),
            dense_like_params=float(dense_like), expert_params=float(m.expert_params),
            lm_head=float(m.vocab * m.hidden), experts=float(max(m.experts, 1)),
            top_k=float(m.experts_per_token), moe_layers=float(m.moe_layers if m.is_moe else 0),
            kv_elems=m.kv_elems_per_token_layer(), kv_split_max=split, full_layers=float(m.full_layers),
            sliding_layers=float(m.sliding_layers), window=float(max(m.sliding_window, 1)),
            dec_attn_coef=float(dec), pre_attn_coef=float(pre), heads=float(m.heads),
            sparse_topk=float(m.sparse_attn_topk), index_bytes=float(m.index_head_dim if m.sparse_attn_topk else 0),
            index_coef=float(2 * m.index_heads * m.index_head_dim if m.sparse_attn_topk else 0),
            linear_state_bytes=float(m.linear_layers * m.linear_state_bytes_per_layer),
            expert_width=float(max(m.ffn_expert, 1)), embed=float(m.embed_params),
            head_params=float(m.lm_head_params), dispatch_width=float(m.moe_latent or m.hidden),
            csa_layers=float(m.csa_layers), csa_ratio=float(max(m.csa_ratio, 1)), csa_topk=float(m.csa_topk),
            hca_layers=float(m.hca_layers), hca_ratio=float(max(m.hca_ratio, 1)),
            csa_index_coef=float(2 * m.index_heads * m.index_head_dim if m.csa_layers else 0),
            pooled_per_token=m.compressed_entries_per_token(), pooled_index_bytes=m.pooled_index_bytes_per_token(),
            window_cache=1.0 if (m.csa_layers or m.hca_layers) else 0.0, mla=1.0 if m.is_mla else 0.0)

    @classmethod
    def stack(cls, items: list["ModelConsts"]) -> "ModelConsts":
        """Field-wise arrays, one entry per item: evaluates many models in one numpy pass."""
        return cls(**{f: np.array([getattr(i, f) for i in items]) for f in cls.__dataclass_fields__})  # type: ignore[arg-type]


@dataclass(frozen=True)
class ChipConsts:
    mem_bw: float
    memory: float
    peak_bf16: float
    scaleup_bw: float
    scaleout_bw: float
    domain: float

    @classmethod
    def of(cls, c: Chip) -> "ChipConsts":
        try:
            scaleout = c.scaleout_bw
        except MissingFigureError:
            # scale-out only matters beyond one node: a chip without a sourced NIC figure is modelled with a slow
            # network (an eighth of its scale-up link), and `estimate` says so in its assumptions
            scaleout = c.scaleup_bw * NO_NIC_SCALEUP_SHARE
        return cls(mem_bw=c.mem_bw, memory=c.memory_bytes, peak_bf16=c.peak_flops("bf16"),
                   scaleup_bw=c.scaleup_bw, scaleout_bw=scaleout, domain=float(c.scaleup_size))

    @classmethod
    def stack(cls, items: list["ChipConsts"]) -> "ChipConsts":
        return cls(**{f: np.array([getattr(i, f) for i in items]) for f in cls.__dataclass_fields__})  # type: ignore[arg-type]


# the fewest rows a dense 16-bit GEMM's tensor-core tiles compute (Hopper's wgmma instruction is 64 rows tall): a
# decode GEMM of fewer tokens costs that much compute. Hidden under the weight read on chips with more than about
# 2 x 64 / 2 FLOPs per byte of bandwidth, i.e. all but the export-capped ones: on the H20 (148 bf16 TFLOP/s for
# 4.0 TB/s) batch-1 bf16 decode runs at this floor (Qwen's H20 speed benchmark, docs/inference-model.md)
M_TILE = 64.0


def gemm_eff(p: Params, rows: F) -> F:
    """GEMM efficiency as a function of its row count (tokens): saturating in M."""
    return p.gemm_eff * p.kernel_eff * rows / (rows + p.gemm_m_half)


def tile_rows(p: Params, rows: F, wbytes: F | float) -> F:
    """The rows a dense GEMM's compute is costed at: in gemm_eff's saturating form its time goes as rows + m_half;
    16-bit GEMMs (wbytes 2) are floored at M_TILE rows, max(rows + m_half, M_TILE), which these rows costed at
    gemm_eff(rows) come to. 8- and 4-bit paths keep no floor: Marlin's 4-bit kernels tile 16 rows, and FP8 DeepSeek
    decode on the H20 at 8 tokens per rank shows none (docs/inference-model.md)."""
    r = np.maximum(rows, 1.0)
    floor = np.where(np.asarray(wbytes) >= 2.0, M_TILE, 0.0)
    return rows * np.maximum(r + p.gemm_m_half, floor) / (r + p.gemm_m_half)


def link_bw(cc: ChipConsts, group: F) -> F:
    """Per-direction bandwidth of a point-to-point hop inside `group` GPUs: scale-up inside the domain."""
    return np.where(group <= cc.domain, cc.scaleup_bw, cc.scaleout_bw)


def allreduce_time(cc: ChipConsts, p: Params, group: F, nbytes: F) -> F:
    """Hierarchical ring all-reduce of `nbytes` over `group` GPUs (NCCL-style, Thakur et al. 2005).

    Inside one scale-up domain of D GPUs: 2(g-1)/g x S over the scale-up link. Across n = g/D domains:
    reduce-scatter inside the domain, all-reduce of the 1/D shard across domains over each GPU's NIC,
    all-gather inside: 2(D-1)/D x S / B_up + 2(n-1)/n x (S/D) / B_out."""
    g = np.maximum(group, 1.0)
    d = np.minimum(g, cc.domain)
    n = np.maximum(g / d, 1.0)
    intra = 2.0 * (d - 1.0) / d * nbytes / (cc.scaleup_bw * p.comm_eff)
    inter = 2.0 * (n - 1.0) / n * (nbytes / d) / (cc.scaleout_bw * p.comm_eff)
    # one-shot kernels inside a domain pay one latency; crossing domains adds a network round
    latency = p.comm_latency_s * np.where(n > 1, 1.0 + np.log2(n) * 4.0, 1.0)
    return np.where(g > 1, latency + intra + inter, 0.0)


def alltoall_time(cc: ChipConsts, p: Params, group: F, nbytes: F) -> F:
    """All-to-all where each GPU sends `nbytes` spread evenly over the other GPUs of `group`: the share bound
    for GPUs in its own scale-up domain crosses the scale-up link, the rest crosses its NIC."""
    g = np.maximum(group, 1.0)
    d = np.minimum(g, cc.domain)
    intra = nbytes * (d - 1.0) / g / (cc.scaleup_bw * p.comm_eff)
    inter = nbytes * (g - d) / g / (cc.scaleout_bw * p.comm_eff)
    # dispatch and combine each pay the all-to-all launch/synchronisation latency (DeepEP-style kernels)
    return np.where(g > 1, 2 * p.a2a_latency_s + np.maximum(intra, inter), 0.0)


def compressed_entries(mc: ModelConsts, ctx: F) -> F:
    """DeepSeek-V4: pooled entries a query reads over all layers at context `ctx` (0 for other models)."""
    return mc.csa_layers * np.minimum(ctx / mc.csa_ratio, mc.csa_topk) + mc.hca_layers * ctx / mc.hca_ratio


def effective_layers(mc: ModelConsts, ctx: F) -> F:
    """Softmax layers weighted by the share of the context they read (sliding windows cap it)."""
    frac = np.minimum(1.0, mc.window / np.maximum(ctx, 1.0))
    return mc.full_layers + mc.sliding_layers * frac


def stage_time(mc: ModelConsts, cc: ChipConsts, p: Params, *, attn_tp: F, attn_dp: F, pp: F, moe_ep: F,
               moe_tp: F, wbytes: F, kvbytes: F, gemm_peak: F, dtype_eff: F,
               dec_seqs: F, dec_tokens: F, dec_ctx: F, pre_tokens: F, pre_ctx: F, wstream: F | float = 1.0,
               seq_host: F | float = 1.0, parts: bool = False):
    """Seconds for one step of one pipeline stage on one GPU (one attention-DP rank's micro-batch).

    dec_seqs: sequences decoding on this rank; dec_tokens: their query tokens (x (1+draft) with speculation);
    dec_ctx: mean context they attend; pre_tokens: prompt tokens prefilled in this step on this rank;
    pre_ctx: mean context a prefill token attends (causal: prefix + half the prompt); wstream: the share of the
    memory bandwidth at which the dense GEMMs stream their weights in this compute path (below 1 for native
    4-bit weights: inference.stream_share); seq_host: the share of the per-sequence host time (seq_s) this step
    pays (below 1 where the engine flushes output every few steps: serving.STREAM_SHARE)."""
    layers_s = mc.layers / pp
    tokens = dec_tokens + pre_tokens
    eff_tok = gemm_eff(p, np.maximum(tokens, 1.0)) * dtype_eff
    bw = cc.mem_bw * p.mem_eff
    # 1. dense-like GEMMs: attention projections, dense FFN, shared experts (split by attention TP). A small-batch
    # GEMM on native 4-bit block-scaled weights streams them at its own share of the bandwidth (wstream)
    w_dense = mc.dense_like_params / (attn_tp * pp)
    # 2. lm head (vocab-parallel over attention TP) for the tokens that sample
    w_head = mc.lm_head / attn_tp
    head_rows = dec_tokens + np.minimum(pre_tokens, 1.0)
    eff_head = gemm_eff(p, np.maximum(head_rows, 1.0)) * dtype_eff

    def weight_gemms(dense_rows: F, lm_rows: F) -> F:
        """Seconds of the dense GEMMs and the lm head, their compute costed at these rows."""
        return (np.maximum(2.0 * dense_rows * w_dense / (gemm_peak * eff_tok), w_dense * wbytes / (bw * wstream))
                + np.maximum(2.0 * lm_rows * w_head / (gemm_peak * eff_head), w_head * wbytes / bw) / pp)

    t_gemm = weight_gemms(tile_rows(p, tokens, wbytes), tile_rows(p, head_rows, wbytes))
    # 3. routed experts: tokens from every attention-DP rank meet in the expert layer (zero for dense models)
    inst_tokens = tokens * attn_dp
    rows_per_expert = np.maximum(inst_tokens * mc.top_k / mc.experts, 1e-9)
    hit = 1.0 - np.power(1.0 - mc.top_k / mc.experts, inst_tokens)
    w_exp_gpu = mc.expert_params / (moe_ep * moe_tp * pp)
    flops = 2.0 * inst_tokens * mc.top_k * p.moe_imbalance * mc.expert_params / (mc.experts * moe_ep * moe_tp * pp)
    # narrow experts (small N per GPU after expert-TP) fill tensor-core tiles poorly
    width = mc.expert_width / moe_tp
    eff_e = gemm_eff(p, np.maximum(rows_per_expert, 1.0)) * dtype_eff * width / (width + p.gemm_n_half)
    # grouped-GEMM kernels stream many small expert matrices: a lower share of HBM bandwidth than dense GEMMs
    # (and on a young software stack, lag its dense GEMMs: moe_eff per chip family)
    t_moe = np.maximum(flops / (gemm_peak * eff_e), w_exp_gpu * hit * wbytes / (bw * p.expert_mem_eff)) / p.moe_eff
    # all-to-all dispatch (fp8) + combine (bf16) across the EP group, partly hidden behind compute. Only when
    # attention runs data parallel do the ranks hold different tokens; under tensor-parallel attention every
    # rank already holds the whole batch, runs its own experts on it, and the layer's all-reduce sums them
    a2a_bytes = tokens * mc.top_k * mc.dispatch_width * (1.0 + ACT_BYTES)
    t_a2a = np.where((moe_ep > 1) & (attn_dp > 1),
                     (mc.moe_layers / pp) * alltoall_time(cc, p, moe_ep * moe_tp, a2a_bytes), 0.0) * (1 - p.overlap_comm)
    # 4. attention core: decode reads the KV cache; prefill is compute-bound
    kv_split = np.minimum(attn_tp, mc.kv_split_max)
    ctx_eff = np.where(mc.sparse_topk > 0, np.minimum(dec_ctx, mc.sparse_topk), dec_ctx)
    lay_d = effective_layers(mc, dec_ctx) / pp
    kv_read = dec_seqs * ctx_eff * mc.kv_elems * kvbytes * lay_d / kv_split
    # DeepSeek sparse attention's kernels walk a query's whole top-k list (entries past the context are masked, not
    # skipped) and run a rank's query heads in tiles of SPARSE_HEAD_TILE (sparse_work; 1 for other models)
    att_flops = dec_tokens * ctx_eff * mc.dec_attn_coef * lay_d / attn_tp * sparse_work(mc, dec_ctx, attn_tp)
    # DeepSeek sparse attention: the indexer scans every cached token's small key (zero elsewhere)
    kv_read = kv_read + dec_seqs * dec_ctx * mc.index_bytes * (mc.softmax_layers / pp)
    att_flops = att_flops + dec_tokens * dec_ctx * mc.index_coef * (mc.softmax_layers / pp)
    # DeepSeek-V4's pooled entries (zero for every other model)
    comp_d = compressed_entries(mc, dec_ctx) / pp
    kv_read = kv_read + dec_seqs * (comp_d * mc.kv_elems * kvbytes / kv_split + dec_ctx * mc.pooled_index_bytes / pp)
    att_flops = att_flops + dec_tokens * (comp_d * mc.dec_attn_coef / attn_tp
                                          + dec_ctx / mc.csa_ratio * mc.csa_index_coef * mc.csa_layers / pp)
    # linear-attention (and SSM) layers keep a fixed recurrent state per sequence instead of a KV cache: each
    # decode step reads it and writes it back (split by heads over attention TP; zero for other models)
    kv_read = kv_read + dec_seqs * 2.0 * mc.linear_state_bytes / (attn_tp * pp)
    t_att_dec = np.maximum(att_flops / (cc.peak_bf16 * p.gemm_eff * p.attn_eff), kv_read / bw)
    pre_ctx_eff = np.where(mc.sparse_topk > 0, np.minimum(pre_ctx, mc.sparse_topk), pre_ctx)
    lay_p = effective_layers(mc, pre_ctx) / pp
    pre_pairs = (pre_ctx_eff * mc.pre_attn_coef * lay_p / attn_tp * sparse_work(mc, pre_ctx, attn_tp)
                 + compressed_entries(mc, pre_ctx) / pp * (mc.pre_attn_coef / attn_tp)
                 + pre_ctx / mc.csa_ratio * mc.csa_index_coef * mc.csa_layers / pp)
    t_att_pre = pre_tokens * pre_pairs / (cc.peak_bf16 * p.gemm_eff * p.kernel_eff * p.attn_eff)
    # 5. tensor-parallel all-reduce: two per layer, ring, over the attention TP group
    ar_bytes = tokens * mc.hidden * ACT_BYTES
    t_ar = 2.0 * layers_s * allreduce_time(cc, p, attn_tp, ar_bytes)
    # 6. pipeline hand-off to the next stage
    t_pp = np.where(pp > 1, p.comm_latency_s + ar_bytes / (link_bw(cc, attn_tp * pp) * p.comm_eff), 0.0)
    # 7. engine overhead per step (scheduling, launch) and per running sequence on this rank (sampling,
    # detokenising, bookkeeping), added to the device time. (Overlapping the per-sequence work with the step, as
    # engines whose front end is its own process could, was refitted and cost the closed-loop and burst rows
    # 1-2 points: docs/validation.md)
    t_over = p.step_s
    # speculative decoding: each token a sequence verifies beyond the first adds host work per step (its draft
    # position, tree mask and accepted-token bookkeeping; SGLang's EAGLE loop runs on the host), spec_seq_s each
    t_front = p.seq_s * seq_host * dec_seqs + p.spec_seq_s * np.maximum(dec_tokens - dec_seqs, 0.0)
    # a step that carries prompt tokens, or a decode batch larger than the engine's CUDA graphs, runs outside
    # graphs: the host launches its kernels layer by layer (an MoE layer adds its own, eager_moe_s),
    # asynchronously, so the step takes the longer of the host's launch work and the device's execution
    graph_units = np.where(p.graph_by_tokens > 0, dec_tokens, dec_seqs)
    graph_cap = np.where((attn_tp * attn_dp < 4) & (cc.memory < 160 * 2**30), p.graph_max_small_tp, p.graph_max)
    outside = (pre_tokens > 0.5) | (graph_units > graph_cap)
    eager = np.where(outside, (mc.layers * p.eager_layer_s + mc.moe_layers * p.eager_moe_s) / pp, 0.0)
    # 8. activation traffic: norms, residuals, rotary, activation functions and MoE permutes read and write
    # the hidden state a few times per layer and token (act_rw tensors; 4 more per routed copy of a token)
    act_bytes = tokens * layers_s * mc.hidden * ACT_BYTES * (p.act_rw + 4.0 * mc.top_k) / attn_tp
    t_act = act_bytes / bw
    # 9. an MoE layer's short kernels (router, top-k, token permute and un-permute), per step: a fixed part and a
    # part that walks the expert list (block alignment per expert, the grouped GEMM's problem list), moe_layer_s
    # being the cost for 256 experts (expert_list_scale)
    t_moe_fixed = mc.moe_layers * p.moe_layer_s * expert_list_scale(mc.experts) / pp
    device = t_gemm + t_moe + t_a2a + t_att_dec + t_att_pre + t_ar + t_pp + t_act + t_moe_fixed
    if parts:   # per-operator seconds, for explanations ("what limits this configuration")
        bare = weight_gemms(tokens, head_rows)      # the tile floor's share apart: the GEMMs at their own rows
        return {"gemm": bare, "gemm_tile": t_gemm - bare,
                "experts": t_moe + t_moe_fixed, "attention": t_att_dec + t_att_pre,
                "activations": t_act, "tp_allreduce": t_ar, "ep_alltoall": t_a2a, "pp_handoff": t_pp,
                "overhead": t_over + t_front, "host_launch": np.maximum(eager - device, 0.0)}
    return np.maximum(device, eager) + t_over + t_front


# query heads per tile of the sparse-MLA kernels (FlashMLA's FP8 sparse decode kernel takes 64 or 128 heads per rank;
# vLLM pads fewer up to 64 and runs prompt tokens through it too when a rank holds under 32 heads, its BF16 prompt
# kernel padding to 64 on Hopper: vllm/v1/attention/backends/mla/flashmla_sparse.py)
SPARSE_HEAD_TILE = 64.0


def sparse_work(mc: ModelConsts, ctx: Any, attn_tp: Any) -> Any:
    """Sparse-attention kernel work relative to the dense count of min(context, top-k) entries x the rank's heads
    (1 for models without DeepSeek sparse attention).

    Applies to DeepSeek's sparse MLA (DeepSeek-V3.2, GLM-5); a block-sparse GQA model read with a top-k (MiniMax-M3)
    keeps the dense count. Engines hand the kernels a fixed top-k list per query (vLLM keeps every sequence's top-k length at the constant
    index_topk for CUDA graphs; invalid entries are -1 and masked inside the loop), so a query costs top-k entries
    however short its context; and the rank's heads are padded to a tile of SPARSE_HEAD_TILE (DeepSeek-V3.2's 128
    heads at TP8 leave 16 per rank: 4x). Reads are not inflated: masked entries load nothing."""
    sparse = (np.asarray(mc.sparse_topk, dtype=float) > 0) & (np.asarray(mc.mla, dtype=float) > 0)
    ctx = np.maximum(np.asarray(ctx, dtype=float), 1.0)
    walked = np.maximum(np.asarray(mc.sparse_topk, dtype=float), 1.0) / np.minimum(ctx, np.maximum(mc.sparse_topk, 1.0))
    heads = np.maximum(np.asarray(mc.heads, dtype=float) / np.asarray(attn_tp, dtype=float), 1.0)
    padded = np.ceil(heads / SPARSE_HEAD_TILE - 1e-9) * SPARSE_HEAD_TILE / heads
    return np.where(sparse, walked * padded, 1.0)


# share of an MoE layer's short-kernel time that does not grow with the expert count (the rest grows with it). Chosen
# on a grid against validate's medians (0.25 / 0.42 / 0.6: the aic sample 14.52 / 14.51 / 14.72 %), not fitted;
# 1 would be the old per-layer constant (14.77 %). docs/inference-model.md sections 2 and 5
MOE_FIXED_SHARE = 0.42


def expert_list_scale(experts: Any) -> Any:
    """An MoE layer's short-kernel time relative to a 256-expert layer: MOE_FIXED_SHARE of it fixed (router, top-k,
    permute launches), the rest in proportion to the experts its alignment and grouped-GEMM scheduling walk
    (gpt-oss-120b's 128 experts 0.71, DeepSeek's 256 1, Qwen3.5-397B's 512 1.58)."""
    return MOE_FIXED_SHARE + (1.0 - MOE_FIXED_SHARE) * np.maximum(experts, 1.0) / 256.0


def smooth_max(a: F, b: F, k: float = 4.0) -> F:
    """(a^k + b^k)^(1/k): the larger of two overlapping durations, plus a little of the smaller where they are
    close (two processes hand work back and forth at each step). Smooth, so that a fit sees both terms."""
    a, b = np.maximum(a, 0.0), np.maximum(b, 0.0)
    m = np.maximum(np.maximum(a, b), 1e-30)
    return m * ((a / m) ** k + (b / m) ** k) ** (1.0 / k)
