"""Model catalog: Hugging Face ``config.json`` -> :class:`ModelSpec` with derived counts.

Parsing is per architecture family (``model_type``); each family maps its published field names onto one
normal form: hidden size, layers, attention (GQA or MLA, full / sliding / linear), FFN (dense, MoE with
shared experts, first-dense and interleaved layers), vocabulary. Derived quantities (parameter counts,
KV-cache bytes per token, FLOPs per token) live on the spec and in ``stockpile.perf.flops``.
"""
from __future__ import annotations

import json
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stockpile.catalog.model_families import (
    cross_attention_layers,
    deepseek_v4_fields,
    nas_blocks,
    nemotron_h_blocks,
    standard_names,
)
from stockpile.catalog.model_names import (
    _DATA,
    _index,
    alias_context,
    implied_weight_dtype,
    is_config_path,
    model_notes,
    resolution_note,
    resolve_model_id,
)
from stockpile.errors import DataError, InputError

# model_type values we know how to read; each maps onto the normal form below.
KNOWN_TYPES = {
    "llama", "mistral", "qwen2", "qwen3", "internlm", "internlm2", "yi", "gemma", "gemma2", "gemma3",
    "gemma3_text", "phi3", "chatglm", "glm4", "mixtral", "qwen2_moe", "qwen3_moe", "deepseek", "deepseek_v2",
    "deepseek_v3", "deepseek_v32", "kimi_k2", "gpt_oss", "llama4", "llama4_text", "ernie4_5_moe",
    "ernie4_5", "hunyuan_v1_moe", "hunyuan_v1_dense", "hunyuan", "glm4_moe", "minimax_m2", "minimax",
    "qwen3_next", "qwen3_5_moe", "glm_moe_dsa", "mimo", "qwen3_5_moe_text", "qwen3_5", "mpt", "gpt2", "gpt_neox", "falcon",
    "qwen3_vl", "qwen3_vl_moe", "gemma4", "step3p7", "mimo_v2_flash", "minimax_m3", "minimax_m3_vl", "nemotron_h",
    "nemotron-nas", "deepseek_v4", "deepseek_ref", "kimi_k3", "kimi_linear", "gptj", "qwen2_vl", "qwen2_5_vl",
    "phimoe", "mllama", "granite", "olmo", "olmo2", "exaone", "internlm3", "smollm3", "seed_oss", "starcoder2",
    "baichuan", "opt", "bloom", "phi", "gpt_bigcode", "cohere", "qwen", "RefinedWeb", "RefinedWebModel",
    "minimax_m1", "bailing_moe", "dbrx", "olmoe", "phi3small", "nemotron", "granitemoehybrid", "cohere2",
    "arctic",
}
# Values a published config.json may omit because the transformers config class supplies them
# (transformers/models/<type>/configuration_<type>.py defaults).
TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma3_text": {"vocab_size": 262208, "tie_word_embeddings": True, "sliding_window_pattern": 6,
                    "head_dim": 256, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
                    "num_attention_heads": 8, "num_key_value_heads": 4},
    "gemma2": {"tie_word_embeddings": True},
    "gemma": {"tie_word_embeddings": True},
    # classes whose default ties the output head to the embedding (transformers' PretrainedConfig default)
    "opt": {"tie_word_embeddings": True}, "bloom": {"tie_word_embeddings": True}, "gpt2": {"tie_word_embeddings": True},
    "gpt_bigcode": {"tie_word_embeddings": True}, "falcon": {"tie_word_embeddings": True},
    "cohere": {"tie_word_embeddings": True},
    # Command R7B: three sliding-window layers (4,096 tokens) then one global layer (Cohere2Config)
    "cohere2": {"tie_word_embeddings": True, "sliding_window_pattern": 4, "sliding_window": 4096},
    "smollm3": {"tie_word_embeddings": True}, "starcoder2": {"tie_word_embeddings": True},
    "phi3small": {"tie_word_embeddings": True},     # Phi3SmallForCausalLM reads logits off the embedding
    # Falcon's first releases (remote code, RWForCausalLM): the output head is the embedding
    "RefinedWeb": {"tie_word_embeddings": True}, "RefinedWebModel": {"tie_word_embeddings": True},
}
# Sizes beyond any model's (a config is read into per-layer lists and products of these): refused before reading
_SIZE_CAPS = {"num_hidden_layers": 100_000, "num_layers": 100_000, "n_layers": 100_000, "n_layer": 100_000,
              "hidden_size": 1_000_000, "num_attention_heads": 100_000, "vocab_size": 100_000_000}
REQUIRED_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")



class ModelSpec(BaseModel):
    """Normal form of a decoder-only transformer, whatever its family."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    architecture: str                       # HF model_type
    family: str = ""
    hidden: int
    layers: int
    vocab: int
    tie_embeddings: bool = False
    # attention
    heads: int
    kv_heads: int
    head_dim: int
    attention: str = "gqa"                  # gqa | mla
    q_lora_rank: int = 0                    # MLA
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0                     # MLA; under GQA a value head width other than head_dim (0: the same)
    sliding_window: int = 0                 # tokens; applies to `sliding_layers` layers
    sliding_layers: int = 0
    linear_layers: int = 0                  # linear-attention (state-space style) layers: no per-token KV
    linear_state_bytes_per_layer: float = 0.0
    linear_params_per_layer: float = 0.0
    sparse_attn_topk: int = 0               # DeepSeek sparse attention: tokens attended per query
    # DeepSeek-V4 compressed attention: every layer keeps a window of `sliding_window` raw entries; CSA layers also
    # compress every `csa_ratio` tokens into one entry and read the top `csa_topk` of them (an indexer picks them),
    # HCA layers compress every `hca_ratio` tokens and read all of them. One shared key/value entry per token
    kv_shared: bool = False                 # keys double as values: one head_dim-wide entry per KV head
    csa_layers: int = 0
    csa_ratio: int = 0
    csa_topk: int = 0
    hca_layers: int = 0
    hca_ratio: int = 0
    attn_params_layer: float = 0.0          # attention parameters per layer where the family sets them itself
    index_head_dim: int = 0
    index_heads: int = 0
    # feed-forward
    gated_mlp: bool = True
    ffn_dense: int = 0                      # intermediate size of dense layers
    dense_layers: int = 0
    moe_layers: int = 0
    experts: int = 0
    experts_per_token: int = 0
    ffn_expert: int = 0
    shared_experts: int = 0
    ffn_shared: int = 0                     # total intermediate width of the shared expert(s)
    moe_latent: int = 0                     # latent MoE (Nemotron 3): experts work in this width, projected to/from hidden
    mtp_layers: int = 0                     # DeepSeek multi-token-prediction modules (not in the main count)
    attn_bias: bool = False
    max_position: int = 0
    published_params_b: float | None = None
    published_active_params_b: float | None = None
    default_weight_dtype: str = "bf16"
    has_vision: bool = False                # multimodal repo: counts here are the language model's only
    aliases: tuple[str, ...] = Field(default=())

    @model_validator(mode="after")
    def _counts_are_not_negative(self) -> "ModelSpec":
        bad = [k for k, v in self.__dict__.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
               and k not in ("published_params_b", "published_active_params_b") and not 0 <= v <= 1e15]
        if bad:
            raise ValueError(f"counts and sizes must be finite, not negative and below 1e15: {', '.join(bad)}")
        return self

    # ---------------- structure ----------------
    @property
    def is_moe(self) -> bool:
        return self.experts > 0 and self.moe_layers > 0

    @property
    def is_mla(self) -> bool:
        return self.attention == "mla"

    @property
    def full_layers(self) -> int:
        """Layers with full (global) softmax attention."""
        return self.layers - self.sliding_layers - self.linear_layers

    # ---------------- parameter counts (per component, whole model) ----------------
    @cached_property
    def attn_params_per_layer(self) -> float:
        if self.attn_params_layer:
            return float(self.attn_params_layer)
        d, h = self.hidden, self.heads
        if self.is_mla:
            qk = self.qk_nope_head_dim + self.qk_rope_head_dim
            q = d * self.q_lora_rank + self.q_lora_rank * h * qk if self.q_lora_rank else d * h * qk
            kv = d * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank * h * (
                self.qk_nope_head_dim + self.v_head_dim)
            o = h * self.v_head_dim * d
            idx = (d * self.index_heads * self.index_head_dim + d * self.index_head_dim + d * self.index_heads
                   if self.sparse_attn_topk else 0)
            return float(q + kv + o + idx)
        hd, vd = self.head_dim, self.value_dim
        idx = (d * self.index_heads * self.index_head_dim + d * self.index_head_dim + d * self.index_heads
               if self.sparse_attn_topk else 0)
        return float(d * h * hd + d * self.kv_heads * (hd + vd) + h * vd * d + idx)

    @property
    def value_dim(self) -> int:
        """Width of one value head (GQA): head_dim unless the config gives values their own (MiMo-V2)."""
        return self.v_head_dim or self.head_dim

    @property
    def attn_params(self) -> float:
        softmax = (self.layers - self.linear_layers) * self.attn_params_per_layer
        return softmax + self.linear_layers * self.linear_params_per_layer

    @property
    def _mlp_mats(self) -> int:
        return 3 if self.gated_mlp else 2

    @property
    def dense_ffn_params(self) -> float:
        return float(self.dense_layers * self._mlp_mats * self.hidden * self.ffn_dense)

    @property
    def expert_params(self) -> float:
        """All routed experts of all MoE layers."""
        return float(self.moe_layers * self.experts * self._mlp_mats * (self.moe_latent or self.hidden) * self.ffn_expert)

    @property
    def shared_expert_params(self) -> float:
        return float(self.moe_layers * self._mlp_mats * self.hidden * self.ffn_shared)

    @property
    def router_params(self) -> float:
        """The router, and a latent MoE's projections into and out of the experts' width."""
        return float(self.moe_layers * (self.hidden * self.experts + 2 * self.hidden * self.moe_latent))

    @property
    def embed_params(self) -> float:
        return float(self.vocab * self.hidden)

    @property
    def lm_head_params(self) -> float:
        return 0.0 if self.tie_embeddings else float(self.vocab * self.hidden)

    @property
    def norm_params(self) -> float:
        return float(self.layers * 2 * self.hidden + self.hidden)

    @property
    def params(self) -> float:
        """Total parameters (the published count convention: embeddings included, MTP modules excluded)."""
        return (self.attn_params + self.dense_ffn_params + self.expert_params + self.shared_expert_params
                + self.router_params + self.embed_params + self.lm_head_params + self.norm_params)

    @property
    def active_params(self) -> float:
        """Parameters touched per token (top-k of the routed experts)."""
        routed = self.expert_params * (self.experts_per_token / self.experts) if self.experts else 0.0
        return (self.attn_params + self.dense_ffn_params + routed + self.shared_expert_params
                + self.router_params + self.embed_params + self.lm_head_params + self.norm_params)

    @property
    def matmul_params_active(self) -> float:
        """Active parameters that take part in a GEMM per token (embedding lookup excluded; lm_head in)."""
        return self.active_params - self.embed_params - self.norm_params + (
            self.embed_params if self.tie_embeddings else 0.0)

    # ---------------- KV cache ----------------
    def kv_elems_per_token_layer(self) -> float:
        """Cached elements per token per softmax-attention layer (K and V, or the MLA latent + rope key)."""
        if self.is_mla:
            return float(self.kv_lora_rank + self.qk_rope_head_dim)
        return float(self.kv_heads * (self.head_dim if self.kv_shared else self.head_dim + self.value_dim))

    def compressed_entries_per_token(self) -> float:
        """DeepSeek-V4: compressed cache entries one token adds over all layers (1/ratio per CSA or HCA layer)."""
        return (self.csa_layers / self.csa_ratio if self.csa_ratio else 0.0) + (
            self.hca_layers / self.hca_ratio if self.hca_ratio else 0.0)

    def pooled_index_bytes_per_token(self) -> float:
        """DeepSeek-V4: bytes of the CSA indexer's fp4 keys one token of context adds over all layers."""
        return self.csa_layers / self.csa_ratio * self.index_head_dim * 0.5 if self.csa_ratio else 0.0

    def kv_bytes_per_token(self, kv_bytes: float, context: float | None = None) -> float:
        """KV-cache bytes per token, all layers (sliding layers capped at the window when `context` given)."""
        per = self.kv_elems_per_token_layer() * kv_bytes
        full = self.full_layers * per
        if self.sliding_layers:
            frac = 1.0 if context is None or context <= self.sliding_window else self.sliding_window / context
            full += self.sliding_layers * per * frac
        if self.sparse_attn_topk:
            full += (self.layers - self.linear_layers) * self.index_head_dim * 1.0  # fp8 indexer keys
        # DeepSeek-V4: the pooled entries, and the CSA indexer's keys
        full += self.compressed_entries_per_token() * per + self.pooled_index_bytes_per_token()
        return full


# ---------------------------------------------------------------- parsing
def _get(cfg: dict[str, Any], *names: str, default: Any = None) -> Any:
    for n in names:
        if n in cfg and cfg[n] is not None:
            return cfg[n]
    return default


def _text_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Multimodal repos (Llama 4, Gemma 3, Qwen3.5) keep the language model under text_config."""
    tc = cfg.get("text_config")
    if isinstance(tc, dict) and "hidden_size" in tc:
        merged = dict(tc)
        merged.setdefault("model_type", cfg.get("model_type"))
        merged["_outer_model_type"] = cfg.get("model_type")
        for k in ("tie_word_embeddings", "quantization_config"):
            if k in cfg and k not in merged:
                merged[k] = cfg[k]
        return merged
    return cfg


def spec_from_config(cfg: dict[str, Any], *, model_id: str, published: dict[str, Any] | None = None) -> ModelSpec:
    """Read a published HF config.json into the normal form. Raises DataError naming missing fields, and one
    naming the model type where a field has a value of the wrong kind (text where a number belongs)."""
    try:
        return _read_config(cfg, model_id=model_id, published=published)
    except (LookupError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
        raise DataError(f"{model_id}: its {cfg.get('model_type', 'unknown')} config.json has a field missing or of "
                        f"the wrong kind ({exc!r}); compare it with the family's published config.json") from None


def _read_config(cfg: dict[str, Any], *, model_id: str, published: dict[str, Any] | None) -> ModelSpec:
    outer_type = str(cfg.get("model_type", ""))
    vision = isinstance(cfg.get("vision_config"), dict) or "vision" in str(cfg.get("architectures", "")).lower() \
        or "ForConditionalGeneration" in str(cfg.get("architectures", ""))
    cfg = _text_config(cfg)
    too_big = [k for k, cap in _SIZE_CAPS.items() if isinstance(cfg.get(k), (int, float))
               and not isinstance(cfg.get(k), bool) and not abs(cfg[k]) <= cap]
    if too_big:
        raise DataError(f"{model_id}: {', '.join(too_big)} out of any model's range (at most "
                        f"{', '.join(f'{_SIZE_CAPS[k]:,}' for k in too_big)})")
    cfg = {**TYPE_DEFAULTS.get(str(cfg.get("model_type")), {}), **cfg}
    mtype = str(cfg.get("_outer_model_type") or cfg.get("model_type") or "")
    cfg = standard_names(cfg, mtype)
    if mtype not in KNOWN_TYPES and str(cfg.get("model_type")) not in KNOWN_TYPES:
        raise DataError(
            f"{model_id}: unsupported model_type '{outer_type or mtype}'. Known: {', '.join(sorted(KNOWN_TYPES))}. "
            f"A decoder config needs {', '.join(REQUIRED_FIELDS)} (+ num_key_value_heads, head_dim; MoE: "
            "num_experts/n_routed_experts, num_experts_per_tok, moe_intermediate_size)")
    hidden = _get(cfg, "hidden_size", "d_model", "n_embd", "n_embed")
    layers = _get(cfg, "num_hidden_layers", "num_layers", "n_layers", "n_layer")
    heads = _get(cfg, "num_attention_heads", "n_heads", "n_head")
    vocab = _get(cfg, "vocab_size", "padded_vocab_size")
    missing = [n for n, v in (("hidden_size", hidden), ("num_hidden_layers", layers),
                              ("num_attention_heads", heads), ("vocab_size", vocab)) if v is None]
    if missing:
        raise DataError(f"{model_id}: config.json lacks {', '.join(missing)}")
    try:
        hidden, layers, heads, vocab = int(hidden), int(layers), int(heads), int(vocab)
    except (TypeError, ValueError):
        raise DataError(f"{model_id}: hidden_size, num_hidden_layers, num_attention_heads and vocab_size must be "
                        "whole numbers") from None
    bad = [n for n, v in (("hidden_size", hidden), ("num_hidden_layers", layers), ("num_attention_heads", heads),
                          ("vocab_size", vocab)) if v < 1]
    if bad:
        raise DataError(f"{model_id}: config.json needs {', '.join(bad)} >= 1")
    # multi-query families (Falcon-7B, StarCoder) state one flag instead of a count: one shared KV head
    mq = 1 if cfg.get("multi_query") is True and not cfg.get("new_decoder_architecture") else heads
    kv_heads = int(_get(cfg, "num_key_value_heads", "multi_query_group_num", "num_kv_heads", "n_head_kv", default=mq))
    if not 1 <= kv_heads <= heads:
        raise DataError(f"{model_id}: config.json has {kv_heads} key/value heads for {heads} attention heads; "
                        "num_key_value_heads must be 1..num_attention_heads")
    if cfg.get("multi_query_attention") is False:
        kv_heads = heads
    head_dim = int(_get(cfg, "head_dim", "kv_channels", default=hidden // heads))
    f: dict[str, Any] = dict(
        id=model_id, architecture=mtype, hidden=hidden, layers=layers, vocab=vocab, heads=heads,
        kv_heads=kv_heads, head_dim=head_dim, max_position=int(_get(cfg, "max_position_embeddings",
                                                                    "seq_length", "max_seq_len", "n_positions",
                                                                    default=0)),
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        attn_bias=bool(_get(cfg, "attention_bias", "qkv_bias", "add_qkv_bias", default=False)),
    )
    inter = _get(cfg, "intermediate_size", "ffn_hidden_size", "n_inner", "ffn_dim")
    if mtype == "qwen" and inter:  # Qwen 1.x: intermediate_size counts both halves of the gated MLP (w1 and w2)
        inter = int(inter) // 2
    if mtype in ("mpt",):
        inter = hidden * int(cfg.get("expansion_ratio", 4))
        f["gated_mlp"] = False
    if mtype in ("gpt2", "gpt_neox", "falcon", "gptj", "opt", "bloom", "phi", "gpt_bigcode", "starcoder2",
                 "RefinedWeb", "RefinedWebModel", "nemotron"):      # (Nemotron: squared-ReLU, no gate)
        f["gated_mlp"] = False
        inter = inter or 4 * hidden
    # --- attention kinds
    if _get(cfg, "kv_lora_rank") is not None:
        f.update(attention="mla", q_lora_rank=int(cfg.get("q_lora_rank") or 0),
                 kv_lora_rank=int(cfg["kv_lora_rank"]), qk_nope_head_dim=int(cfg["qk_nope_head_dim"]),
                 qk_rope_head_dim=int(cfg["qk_rope_head_dim"]), v_head_dim=int(cfg["v_head_dim"]),
                 head_dim=int(cfg["qk_nope_head_dim"]) + int(cfg["qk_rope_head_dim"]), kv_heads=heads)
    elif cfg.get("v_head_dim"):
        f["v_head_dim"] = int(cfg["v_head_dim"])
    if cfg.get("index_topk"):
        f.update(sparse_attn_topk=int(cfg["index_topk"]), index_head_dim=int(cfg.get("index_head_dim", 128)),
                 index_heads=int(cfg.get("index_n_heads", 64)))
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        f["sliding_layers"] = sum(1 for t in layer_types if "sliding" in str(t))
        f["linear_layers"] = sum(1 for t in layer_types if "linear" in str(t))
    elif cfg.get("full_attention_interval"):
        n = int(cfg["full_attention_interval"])
        f["linear_layers"] = layers - layers // n
    elif mtype == "gemma2":
        f["sliding_layers"] = layers // 2
    elif mtype in ("gemma3", "gemma3_text", "cohere2"):
        pattern = int(cfg.get("sliding_window_pattern", 6))
        f["sliding_layers"] = layers - layers // pattern
    elif cfg.get("sliding_window") and cfg.get("use_sliding_window", True) and mtype in ("mistral", "starcoder2"):
        f["sliding_layers"] = layers
    if f.get("sliding_layers"):
        f["sliding_window"] = int(cfg.get("sliding_window") or 4096)
    if f.get("linear_layers"):
        kh = int(_get(cfg, "linear_num_key_heads", default=16))
        vh = int(_get(cfg, "linear_num_value_heads", default=32))
        kd = int(_get(cfg, "linear_key_head_dim", default=128))
        vd = int(_get(cfg, "linear_value_head_dim", default=128))
        conv = int(_get(cfg, "linear_conv_kernel_dim", default=4))
        qkv = 2 * kh * kd + vh * vd
        f["linear_params_per_layer"] = float(hidden * (qkv + vh * vd + 2 * vh) + vh * vd * hidden + conv * qkv)
        f["linear_state_bytes_per_layer"] = float(vh * kd * vd * 4 + conv * qkv * 2)   # fp32 state + conv cache
    if mtype == "mllama":          # Llama 3.2 Vision: every few layers a cross-attention layer reads the image
        f.update(cross_attention_layers(cfg, hidden, heads, kv_heads, head_dim))
    if mtype in ("nemotron_h", "granitemoehybrid"):   # blocks of the pattern: Mamba-2, attention, MLP or MoE
        f.update(nemotron_h_blocks(cfg, model_id, hidden, gated=mtype == "granitemoehybrid"))
        return _finish(f, cfg, vision, published)
    if mtype in ("deepseek_v4", "deepseek_ref"):   # compressed (CSA/HCA) attention, one shared 512-wide KV head
        f.update(deepseek_v4_fields(cfg, model_id, hidden, heads, layers))
    if mtype == "nemotron-nas":    # per-layer blocks: attention kept or removed, FFN width per layer
        f.update(nas_blocks(cfg, model_id, hidden, heads))
        return _finish(f, cfg, vision, published)
    # --- feed-forward: experts
    def first(v: Any) -> Any:
        return v[0] if isinstance(v, list) and v else v

    n_exp = int(first(_get(cfg, "n_routed_experts", "num_local_experts", "num_experts", "moe_num_experts",
                           default=0)) or 0)
    top_k = int(first(_get(cfg, "num_experts_per_tok", "experts_per_token", "moe_k", "moe_topk", "top_k",
                           default=0)) or 0)
    if n_exp and top_k:
        ffn_expert = int(first(_get(cfg, "moe_intermediate_size", default=inter)) or inter)
        if mtype in ("llama4", "llama4_text"):
            ffn_expert = int(cfg["intermediate_size"])
            inter = int(cfg.get("intermediate_size_mlp", inter))
        moe_mask = _moe_layer_mask(cfg, mtype, layers)
        n_moe = sum(moe_mask)
        n_shared = int(first(_get(cfg, "n_shared_experts", "num_shared_experts", "moe_num_shared_experts",
                                  "num_shared_expert", default=0)) or 0)
        shared_w = _get(cfg, "shared_expert_intermediate_size", "moe_shared_expert_intermediate_size")
        if shared_w:
            ffn_shared = int(shared_w)
        elif mtype in ("llama4", "llama4_text"):
            ffn_shared = ffn_expert
        else:
            ffn_shared = n_shared * ffn_expert
        latent = int(cfg.get("moe_latent_size") or 0)
        f.update(moe_latent=latent if 0 < latent < hidden else 0)
        f.update(experts=n_exp, experts_per_token=top_k, ffn_expert=ffn_expert, moe_layers=n_moe,
                 shared_experts=max(n_shared, 1 if ffn_shared else 0), ffn_shared=ffn_shared,
                 dense_layers=layers - n_moe, ffn_dense=int(inter or 0))
    else:
        if inter is None:
            raise DataError(f"{model_id}: config.json lacks intermediate_size")
        f.update(dense_layers=layers, ffn_dense=int(inter))
    return _finish(f, cfg, vision, published)


def _finish(f: dict[str, Any], cfg: dict[str, Any], vision: bool, published: dict[str, Any] | None) -> ModelSpec:
    """MTP modules, the packaging's weight dtype and the catalog entry's published facts, then the spec."""
    f["mtp_layers"] = int(cfg.get("num_nextn_predict_layers", 0) or 0)
    f["has_vision"] = bool(vision)
    q = cfg.get("quantization_config") or {}
    qm = str(q.get("quant_method", "")).lower()
    if qm == "fp8" or q.get("fmt") == "e4m3":
        f["default_weight_dtype"] = "fp8"
    elif qm in ("mxfp4", "nvfp4", "modelopt_fp4"):
        f["default_weight_dtype"] = "fp4"
    elif qm in ("awq", "gptq"):
        f["default_weight_dtype"] = "int4"
    if str(cfg.get("expert_dtype", "")).lower() == "fp4":   # DeepSeek-V4: fp4 experts (nearly all the weights)
        f["default_weight_dtype"] = "fp4"
    if published:
        f["published_params_b"] = published.get("params_b")
        f["published_active_params_b"] = published.get("active_params_b")
        f["family"] = published.get("family", "") or ""
        f["aliases"] = tuple(published.get("aliases") or ())
    return ModelSpec(**f)


def _moe_layer_mask(cfg: dict[str, Any], mtype: str, layers: int) -> list[bool]:
    """Which layers are MoE, from the family's convention."""
    mask = [True] * layers
    first_dense = _get(cfg, "first_k_dense_replace", "moe_layer_start_index", "first_k_dense")
    if isinstance(first_dense, list):
        first_dense = first_dense[0]
    if first_dense:
        for i in range(min(int(first_dense), layers)):
            mask[i] = False
    freq = _get(cfg, "moe_layer_freq", "decoder_sparse_step", "interleave_moe_layer_step", "moe_layer_interval")
    if isinstance(freq, list):     # explicit per-layer list (some families)
        return [bool(x) for x in freq][:layers] + [True] * max(0, layers - len(freq))
    if freq and int(freq) > 1:
        step = int(freq)
        if mtype in ("llama4", "llama4_text"):
            mask = [((i + 1) % step == 0) for i in range(layers)]
        else:
            mask = [m and ((i + 1) % step == 0) for i, m in enumerate(mask)]
    only_dense = cfg.get("mlp_only_layers") or []
    for i in only_dense:
        if 0 <= int(i) < layers:
            mask[int(i)] = False
    if cfg.get("moe_layer_end_index") is not None:
        end = cfg["moe_layer_end_index"]
        end = end[0] if isinstance(end, list) else end
        if int(end) >= 0:
            mask = [m and i <= int(end) for i, m in enumerate(mask)]
    return mask


# ---------------------------------------------------------------- catalog
__all__ = ["ModelSpec", "get_model", "implied_weight_dtype", "list_models", "load_config_path", "model_notes",
           "resolution_note", "resolve_model_id", "spec_from_config"]


@cache
def _load(canonical: str) -> ModelSpec:
    e = _index()[canonical.lower()]
    try:
        cfg = json.loads((_DATA / e["file"]).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"model data {e['file']}: {exc}") from None
    return spec_from_config(cfg, model_id=e["id"], published=e)


def load_config_path(path: str | Path) -> ModelSpec:
    p = Path(path)
    if p.is_dir():
        p = p / "config.json"
    try:
        cfg = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError("model", f"cannot read config.json at {p}: {exc}") from None
    return spec_from_config(cfg, model_id=str(cfg.get("_name_or_path") or p.parent.name or p.stem))


def get_model(model_id: str) -> ModelSpec:
    """Look a model up by HF id (case-insensitive, suffix-tolerant) or read a config.json path."""
    if is_config_path(model_id):
        return load_config_path(model_id)
    spec = _load(resolve_model_id(model_id))
    ctx = alias_context(model_id)
    return spec if ctx is None else spec.model_copy(update={"max_position": ctx})


def list_models() -> list[ModelSpec]:
    return [_load(e["id"]) for e in _index().values()]
