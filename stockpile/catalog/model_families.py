"""Architectures whose config.json needs its own reading before the common normal form (catalog/models.py):
families that publish a standard quantity under their own names, and the block-per-layer hybrids (Nemotron-H's
Mamba-2 / attention / MoE pattern, Llama-Nemotron's NAS block_configs). docs/inference-model.md section 1."""
from __future__ import annotations

import re
from typing import Any

from stockpile.errors import DataError


def standard_names(cfg: dict[str, Any], mtype: str) -> dict[str, Any]:
    """Families that publish a standard quantity under their own names, renamed to the common ones (a value of
    the wrong kind raises; models.spec_from_config names it)."""
    cfg = dict(cfg)
    if mtype == "step3p7" and cfg.get("share_expert_dim"):        # Step 3.x: one shared expert of this width
        cfg.setdefault("shared_expert_intermediate_size",
                       int(cfg["share_expert_dim"]) * max(int(cfg.get("n_shared_experts") or 1), 1))
    if mtype == "mimo_v2_flash" and isinstance(cfg.get("hybrid_layer_pattern"), list):
        # 1: sliding-window layer, 0: full attention
        cfg["layer_types"] = ["sliding_attention" if x else "full_attention" for x in cfg["hybrid_layer_pattern"]]
        cfg["sliding_window"] = cfg.get("sliding_window") or cfg.get("sliding_window_size")
    if mtype in ("kimi_k3", "kimi_linear") and isinstance(cfg.get("linear_attn_config"), dict):
        # Kimi Linear / K3: KDA (gated delta-rule linear attention) on the layers listed (1-based), MLA on the
        # rest; routed experts in a latent width (routed_expert_hidden_size)
        lac = cfg["linear_attn_config"]
        kda = {int(i) for i in lac.get("kda_layers") or []}
        n = int(cfg.get("num_hidden_layers") or 0)
        cfg["layer_types"] = ["linear_attention" if i in kda else "full_attention" for i in range(1, n + 1)]
        heads, hd = int(lac.get("num_heads") or 0), int(lac.get("head_dim") or 0)
        cfg.update(linear_num_key_heads=heads, linear_num_value_heads=heads, linear_key_head_dim=hd,
                   linear_value_head_dim=hd, linear_conv_kernel_dim=int(lac.get("short_conv_kernel_size") or 4))
        cfg.setdefault("num_experts_per_tok", cfg.get("num_experts_per_token"))
        if cfg.get("routed_expert_hidden_size"):
            cfg.setdefault("moe_latent_size", cfg["routed_expert_hidden_size"])
    if mtype in ("minimax_m1", "minimax_text_01") and isinstance(cfg.get("attn_type_list"), list):
        # MiniMax-M1 / Text-01: lightning (linear) attention on the layers marked 0, softmax attention on those
        # marked 1; a lightning layer projects q, k, v and an output gate over all heads and keeps a head_dim x
        # head_dim state per head (no short convolution)
        cfg["layer_types"] = ["full_attention" if int(x) else "linear_attention" for x in cfg["attn_type_list"]]
        heads, hd = int(cfg.get("num_attention_heads") or 0), int(cfg.get("head_dim") or 0)
        cfg.update(linear_num_key_heads=heads, linear_num_value_heads=heads, linear_key_head_dim=hd,
                   linear_value_head_dim=hd, linear_conv_kernel_dim=0)
    if mtype == "dbrx":
        # DBRX: attention and expert settings in nested blocks (attn_config, ffn_config); every layer is MoE
        attn, ffn = cfg.get("attn_config") or {}, cfg.get("ffn_config") or {}
        cfg.setdefault("num_key_value_heads", attn.get("kv_n_heads"))
        cfg.setdefault("num_local_experts", ffn.get("moe_num_experts"))
        cfg.setdefault("num_experts_per_tok", ffn.get("moe_top_k"))
        cfg.setdefault("moe_intermediate_size", ffn.get("ffn_hidden_size"))
        cfg.setdefault("intermediate_size", ffn.get("ffn_hidden_size"))
    if mtype == "arctic":
        # Snowflake Arctic (remote code): a MoE layer every moe_layer_frequency layers, each beside a dense residual
        # gated MLP of the hidden width (parallel_attn_mlp_res; vLLM's port names it use_residual): a shared
        # expert in the normal form
        cfg.setdefault("decoder_sparse_step", cfg.get("moe_layer_frequency"))
        if cfg.get("parallel_attn_mlp_res") or cfg.get("use_residual"):
            cfg.setdefault("shared_expert_intermediate_size", cfg.get("hidden_size"))
    if mtype == "phi3small":
        # Phi-3-small: the gated (gegelu) MLP's width is ff_intermediate_size. Every other layer attends block-
        # sparsely (local blocks plus every vert_stride-th older block) but caches every token's keys and values:
        # read as dense attention, which costs those layers' attention at full context (an upper bound)
        cfg.setdefault("intermediate_size", cfg.get("ff_intermediate_size"))
    if mtype == "gemma4":
        # Gemma 4: the global layers' keys double as values (attention_k_eq_v) over fewer, wider heads; their KV
        # per token equals num_global_key_value_heads x 2 x head_dim, which is what the cache holds at long
        # context (the sliding layers keep 1,024 tokens). The MoE variant has a dense MLP beside its experts in
        # every layer: a shared expert in the normal form
        cfg["num_key_value_heads"] = cfg.get("num_global_key_value_heads") or cfg.get("num_key_value_heads")
        if cfg.get("enable_moe_block") and cfg.get("num_experts"):
            cfg["num_experts_per_tok"] = cfg.get("top_k_experts")
            cfg["shared_expert_intermediate_size"] = cfg.get("intermediate_size")
    if mtype == "nemotron_h" and not cfg.get("hybrid_override_pattern") and cfg.get("layers_block_type"):
        # newer releases list the blocks by name instead of the pattern string
        names = cfg["layers_block_type"]
        names = names if isinstance(names, list) else re.findall(r"[a-z_]+", str(names))
        code = {"mamba": "M", "attention": "*", "moe": "E", "mlp": "-"}
        cfg["hybrid_override_pattern"] = "".join(code.get(str(n), "?") for n in names)
        cfg.setdefault("num_hidden_layers", len(names))
    if mtype == "granitemoehybrid":
        # Granite 4.0-H: each layer is a Mamba-2 or an attention mixer (layer_types), followed in every layer by the
        # same MoE block (routed experts plus a shared gated MLP of shared_intermediate_size; the shared MLP alone in
        # the dense sizes): written in Nemotron-H's block pattern with its field names (GraniteMoeHybridConfig
        # defaults: 128 Mamba heads of expand x hidden / heads, state 256, 1 group, conv 4)
        n = int(cfg.get("num_hidden_layers") or 0)
        types = cfg.get("layer_types") or cfg.get("layers_block_type") or ["mamba"] * n
        if not isinstance(types, list) or len(types) != n:
            raise DataError(f"granitemoehybrid: layer_types must list one entry ('mamba' or 'attention') for each of "
                            f"the {n} layers (num_hidden_layers)")
        moe = bool(cfg.get("num_local_experts"))
        cfg["hybrid_override_pattern"] = "".join(("*" if "attention" in str(t) else "M") + ("E" if moe else "-")
                                                 for t in types)
        heads = int(cfg.get("mamba_n_heads") or 128)
        d_head = cfg.get("mamba_d_head", "auto")
        if d_head in (None, "auto"):
            d_head = int(cfg.get("mamba_expand") or 2) * int(cfg.get("hidden_size") or 0) // max(heads, 1)
        cfg.update(mamba_num_heads=heads, mamba_head_dim=d_head, ssm_state_size=cfg.get("mamba_d_state") or 256,
                   n_groups=cfg.get("mamba_n_groups") or 1, conv_kernel=cfg.get("mamba_d_conv") or 4)
        if moe:
            cfg.update(n_routed_experts=cfg["num_local_experts"], moe_intermediate_size=cfg.get("intermediate_size"),
                       moe_shared_expert_intermediate_size=cfg.get("shared_intermediate_size"))
        else:
            cfg["intermediate_size"] = cfg.get("shared_intermediate_size") or cfg.get("intermediate_size")
    if mtype in ("minimax_m3", "minimax_m3_vl"):
        # dense layers have their own width; each sparse-attention query reads top-k blocks of block_size tokens
        if cfg.get("dense_intermediate_size"):
            cfg["moe_intermediate_size"] = cfg.get("moe_intermediate_size") or cfg.get("intermediate_size")
            cfg["intermediate_size"] = cfg["dense_intermediate_size"]
        if cfg.get("shared_intermediate_size"):
            cfg["shared_expert_intermediate_size"] = int(cfg["shared_intermediate_size"]) * max(
                int(cfg.get("n_shared_experts") or 1), 1)
        sa = cfg.get("sparse_attention_config") or {}
        if sa.get("use_sparse_attention") and sa.get("sparse_topk_blocks"):
            cfg["index_topk"] = int(sa["sparse_topk_blocks"]) * int(sa.get("sparse_block_size") or 1)
            cfg["index_n_heads"] = int(sa.get("sparse_num_index_heads") or 1)
            cfg["index_head_dim"] = int(sa.get("sparse_index_dim") or 128)
    return cfg


def nemotron_h_blocks(cfg: dict[str, Any], model_id: str, hidden: int, gated: bool = False) -> dict[str, Any]:
    """Nemotron-H / Nemotron 3: `hybrid_override_pattern` gives one block per character, M a Mamba-2 mixer,
    * attention, - a (non-gated, squared-ReLU) MLP, E a MoE. In the normal form the mixers are the layers
    (Mamba-2 as linear-attention layers: no per-token KV, a fixed state per sequence) and the FFN blocks are
    counted beside them. `gated`: the MLPs and experts are gated (Granite 4.0-H's SwiGLU)."""
    pat = str(cfg.get("hybrid_override_pattern") or "")
    n_m, n_att, n_moe, n_mlp = (pat.count(c) for c in "M*E-")
    if not pat or n_m + n_att + n_moe + n_mlp != len(pat):
        raise DataError(f"{model_id}: nemotron_h needs hybrid_override_pattern made of M, *, - and E "
                        f"(got {pat[:40]!r})")
    try:
        nh, hd = int(cfg["mamba_num_heads"]), int(cfg["mamba_head_dim"])
        ds, groups = int(cfg["ssm_state_size"]), int(cfg.get("n_groups") or 1)
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{model_id}: nemotron_h needs mamba_num_heads, mamba_head_dim and ssm_state_size") from None
    conv = int(cfg.get("conv_kernel") or 4)
    inner, conv_dim = nh * hd, nh * hd + 2 * groups * ds
    # in_proj (z, x, B, C, dt), conv1d, out_proj, per-head A, D and dt bias, gated norm
    mamba = hidden * (2 * inner + 2 * groups * ds + nh) + inner * hidden + conv * conv_dim + 3 * nh + inner
    layers = max(n_m + n_att, n_moe + n_mlp, 1)
    lin = layers - n_att
    f: dict[str, Any] = dict(
        layers=layers, linear_layers=lin, linear_params_per_layer=float(n_m * mamba / max(lin, 1)),
        # fp32 SSM state (mamba_ssm_cache_dtype) and the conv window in 16 bits
        linear_state_bytes_per_layer=float(n_m * (inner * ds * 4 + (conv - 1) * conv_dim * 2) / max(lin, 1)),
        gated_mlp=gated, dense_layers=n_mlp, ffn_dense=int(cfg.get("intermediate_size") or 0) if n_mlp else 0)
    if n_moe:
        n_shared = int(cfg.get("n_shared_experts") or 0)
        shared = int(cfg.get("moe_shared_expert_intermediate_size") or 0) or n_shared * int(cfg["moe_intermediate_size"])
        f.update(moe_layers=n_moe, experts=int(cfg["n_routed_experts"]), experts_per_token=int(cfg["num_experts_per_tok"]),
                 ffn_expert=int(cfg["moe_intermediate_size"]), shared_experts=max(n_shared, 1 if shared else 0),
                 ffn_shared=shared, moe_latent=int(cfg.get("moe_latent_size") or 0))
    return f


def nas_blocks(cfg: dict[str, Any], model_id: str, hidden: int, heads: int) -> dict[str, Any]:
    """Llama-Nemotron NAS models (DeciLM): `block_configs` per layer. A layer whose attention is a no-op counts
    as a linear layer without parameters or state; the FFN widths, int(2 x ffn_mult x hidden / 3) rounded up to a
    multiple of 256 as the DeciLM code sizes them, are averaged over the layers (exact in total)."""
    blocks = cfg.get("block_configs")
    if not isinstance(blocks, list) or not blocks:
        raise DataError(f"{model_id}: nemotron-nas needs block_configs (one per layer)")
    groups = {int(b["attention"]["n_heads_in_group"]) for b in blocks
              if not b["attention"].get("no_op") and b["attention"].get("n_heads_in_group")}
    if len(groups) > 1 or any(b["attention"].get("replace_with_linear") or b["ffn"].get("replace_with_linear")
                              for b in blocks):
        raise DataError(f"{model_id}: nemotron-nas layers with differing KV groups or linear replacements are not "
                        "modelled")
    widths = [0 if b["ffn"].get("no_op") else -(-int(2 * float(b["ffn"]["ffn_mult"]) * hidden / 3) // 256) * 256
              for b in blocks]
    return dict(layers=len(blocks), linear_layers=sum(1 for b in blocks if b["attention"].get("no_op")),
                kv_heads=heads // (groups.pop() if groups else 1), dense_layers=len(blocks),
                ffn_dense=round(sum(widths) / len(blocks)))


def deepseek_v4_fields(cfg: dict[str, Any], model_id: str, hidden: int, heads: int, layers: int) -> dict[str, Any]:
    """DeepSeek-V4: one shared 512-wide key/value head per layer (keys double as values), a window of the last
    `sliding_window` tokens kept raw in every layer, and per layer a compression ratio (`compress_ratios`, the main
    layers first): 4 is CSA (every 4 tokens pooled into one entry, an fp4 indexer picks the top `index_topk`
    entries per query), 128 is HCA (every 128 tokens pooled, all entries read), 0 is the window alone. Queries
    and outputs go through low-rank projections (q_lora_rank; o_lora_rank in o_groups groups). Hyper-connections
    (hc_mult residual streams) add little compute and are not modelled."""
    try:
        hd, r_q, r_o = int(cfg["head_dim"]), int(cfg["q_lora_rank"]), int(cfg["o_lora_rank"])
        groups, window = int(cfg.get("o_groups") or 1), int(cfg["sliding_window"])
        ratios = [int(r) for r in cfg["compress_ratios"]][:layers]
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{model_id}: deepseek_v4 needs head_dim, q_lora_rank, o_lora_rank, sliding_window and "
                        "compress_ratios (one per layer)") from None
    if len(ratios) < layers or set(ratios) - {0, 4, 128}:
        raise DataError(f"{model_id}: deepseek_v4 compress_ratios must give 0, 4 or 128 for each of the {layers} "
                        "layers")
    n_i, d_i = int(cfg.get("index_n_heads") or 64), int(cfg.get("index_head_dim") or 128)
    csa, hca = ratios.count(4), ratios.count(128)
    q = hidden * r_q + r_q * heads * hd
    kv = hidden * hd
    o = heads * hd * r_o + groups * r_o * hidden     # each group (h.hd/g wide) to r_o, then the g.r_o to d
    compressor = 2 * hidden * hd                     # pooled entry and its gate, on compressed layers
    indexer = r_q * n_i * d_i + hidden * n_i + 2 * hidden * d_i
    per_layer = q + kv + o + ((csa + hca) * compressor + csa * indexer) / layers
    return dict(kv_heads=1, head_dim=hd, kv_shared=True, sliding_layers=layers, sliding_window=window,
                csa_layers=csa, csa_ratio=4, csa_topk=int(cfg.get("index_topk") or 512), hca_layers=hca,
                hca_ratio=128, attn_params_layer=float(per_layer), sparse_attn_topk=0, index_heads=n_i,
                index_head_dim=d_i)


def cross_attention_layers(cfg: dict[str, Any], hidden: int, heads: int, kv_heads: int, head_dim: int) -> dict[str, Any]:
    """Llama 3.2 Vision (mllama): the layers in `cross_attention_layers` attend to the image's encoded patches, not
    to the text. For text they keep no per-token KV cache, so they count as layers without attention state; their
    projections (q, k, v, o) are weights all the same, and their MLPs are dense layers like the others. A request
    without an image skips them in the engines, which the model does not credit (it runs their weights)."""
    cross = cfg.get("cross_attention_layers")
    n = len(cross) if isinstance(cross, list) else 0
    proj = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    return dict(linear_layers=n, linear_params_per_layer=float(proj), linear_state_bytes_per_layer=0.0) if n else {}
