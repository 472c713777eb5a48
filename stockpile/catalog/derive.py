"""A model shape for a size alone: the nearest published config of the same kind, scaled to the size.

A fleet scenario may describe a future generation only by its parameter counts (``params_b``, and
``active_params_b`` for a mixture of experts). The performance layers need a shape (layers, width, heads,
experts), so :func:`derive_model` takes the shipped catalog model of the same kind (MoE when the active count is
more than 3 % below the total, else dense) nearest in (log total, log active) and scales it:

* width: query heads grow or shrink with the cube root of the size ratio, in whole steps (the KV-head count
  for GQA, which published families keep across sizes, e.g. 8 for Llama 3 8B/70B/405B; 8 heads for MLA and
  MHA); hidden and FFN widths follow the heads, head_dim is kept. Published configs are the aspect ratios, so
  a ratio near 1 keeps the base's width exactly;
* dense: layers to hit the total, then the FFN width (multiples of 64) to close the last layer's rounding;
* MoE: layers (dense-to-MoE layer share kept) to hit the active count, and the number of routed experts to hit
  the total. Expert counts are kept to multiples of the largest power of two not above 1/8 of the count, so
  that expert parallelism still divides them as in published configs (64, 128, 160, 256, 384); the expert
  width (multiples of 16) closes the remaining gap. A total only a little above the active count (few idle
  experts per token) may split experts finer, as fine-grained MoE designs do.

Attention (GQA, MLA, sliding-window share), vocabulary, tied embeddings and the MTP modules are the base's.
Bases with linear-attention or sparse-attention layers are left out: their cost depends on more than size.
The spec is built by :func:`stockpile.catalog.models.spec_from_config` from a config.json dict, like every
catalog model; totals and active counts land within 3 % of the request (else InputError).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from stockpile.catalog.models import ModelSpec, list_models, spec_from_config
from stockpile.errors import InputError

TOLERANCE = 0.03      # derived counts must land this close to the request
MOE_GAP = TOLERANCE   # active below total by more: a mixture of experts (a dense shape could not match both)


@dataclass(frozen=True)
class _Shape:
    """The fields of a ModelSpec that a config.json carries (normal form, neutral family)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tie: bool
    mla: bool
    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    sliding_window: int
    sliding_layers: int
    gated: bool
    ffn_dense: int
    moe_layers: int
    experts: int
    experts_per_token: int
    ffn_expert: int
    shared_experts: int
    ffn_shared: int
    mtp_layers: int
    max_position: int
    attn_bias: bool

    @classmethod
    def of(cls, m: ModelSpec) -> _Shape:
        moe = m.is_moe
        return cls(hidden=m.hidden, layers=m.layers, heads=m.heads, kv_heads=m.kv_heads, head_dim=m.head_dim,
                   vocab=m.vocab, tie=m.tie_embeddings, mla=m.is_mla, q_lora_rank=m.q_lora_rank,
                   kv_lora_rank=m.kv_lora_rank, qk_nope_head_dim=m.qk_nope_head_dim,
                   qk_rope_head_dim=m.qk_rope_head_dim, v_head_dim=m.v_head_dim, sliding_window=m.sliding_window,
                   sliding_layers=m.sliding_layers, gated=m.gated_mlp, ffn_dense=m.ffn_dense,
                   moe_layers=m.moe_layers if moe else 0, experts=m.experts if moe else 0,
                   experts_per_token=m.experts_per_token if moe else 0, ffn_expert=m.ffn_expert if moe else 0,
                   shared_experts=m.shared_experts if moe else 0, ffn_shared=m.ffn_shared if moe else 0,
                   mtp_layers=m.mtp_layers, max_position=m.max_position, attn_bias=m.attn_bias)

    def config(self) -> dict[str, Any]:
        """A config.json dict in a neutral family (llama / qwen2_moe / deepseek_v3 field names)."""
        moe = self.experts > 0 and self.moe_layers > 0
        mtype = "deepseek_v3" if self.mla else ("qwen2_moe" if moe else ("llama" if self.gated else "gpt_neox"))
        cfg: dict[str, Any] = dict(
            model_type=mtype, hidden_size=self.hidden, num_hidden_layers=self.layers,
            num_attention_heads=self.heads, num_key_value_heads=self.kv_heads, head_dim=self.head_dim,
            vocab_size=self.vocab, tie_word_embeddings=self.tie, attention_bias=self.attn_bias,
            max_position_embeddings=self.max_position, intermediate_size=self.ffn_dense or self.ffn_expert)
        if self.mla:
            cfg.update(q_lora_rank=self.q_lora_rank or None, kv_lora_rank=self.kv_lora_rank,
                       qk_nope_head_dim=self.qk_nope_head_dim, qk_rope_head_dim=self.qk_rope_head_dim,
                       v_head_dim=self.v_head_dim)
        if self.sliding_layers:
            cfg["layer_types"] = (["sliding_attention"] * self.sliding_layers
                                  + ["full_attention"] * (self.layers - self.sliding_layers))
            cfg["sliding_window"] = self.sliding_window
        if moe:
            cfg.update(num_experts=self.experts, num_experts_per_tok=self.experts_per_token,
                       moe_intermediate_size=self.ffn_expert, num_shared_experts=self.shared_experts,
                       shared_expert_intermediate_size=self.ffn_shared,
                       first_k_dense_replace=self.layers - self.moe_layers)
        if self.mtp_layers:
            cfg["num_nextn_predict_layers"] = self.mtp_layers
        return cfg

    def spec(self, model_id: str) -> ModelSpec:
        return spec_from_config(self.config(), model_id=model_id)

    def with_layers(self, layers: int, base: _Shape) -> _Shape:
        """`layers` layers, keeping the base's shares of MoE and sliding-window layers."""
        layers = max(1, layers)
        moe = min(layers, max(1, round(layers * base.moe_layers / base.layers))) if base.moe_layers else 0
        sliding = min(layers, round(layers * base.sliding_layers / base.layers))
        return replace(self, layers=layers, moe_layers=moe, sliding_layers=sliding)


def _round_to(x: float, step: int) -> int:
    return max(step, step * round(x / step))


def _widen(sh: _Shape, s: float) -> _Shape:
    """Width scaled by `s` in whole head steps: GQA keeps its KV heads (published families keep 8 across
    sizes) and adds query groups; MLA and MHA move in steps of 8 heads. Hidden and FFN widths follow."""
    shared_kv = sh.mla or sh.kv_heads == sh.heads
    step = (8 if sh.heads >= 8 else 1) if shared_kv else sh.kv_heads
    heads = _round_to(sh.heads * s, step)
    if heads == sh.heads:
        return sh
    r = heads / sh.heads
    hidden = _round_to(sh.hidden * r, 64)
    rh = hidden / sh.hidden
    return replace(sh, heads=heads, kv_heads=heads if shared_kv else sh.kv_heads, hidden=hidden,
                   ffn_dense=_round_to(sh.ffn_dense * rh, 64) if sh.ffn_dense else 0,
                   ffn_expert=_round_to(sh.ffn_expert * rh, 16) if sh.ffn_expert else 0,
                   ffn_shared=_round_to(sh.ffn_shared * rh, 16) if sh.ffn_shared else 0)


def _candidates(moe: bool) -> list[ModelSpec]:
    out = []
    for m in list_models():
        if m.is_moe != moe or m.linear_layers or m.sparse_attn_topk or (m.is_moe and not m.gated_mlp):
            continue
        out.append(m)
    return out


def _nearest(params: float, active: float, moe: bool) -> ModelSpec:
    def dist(m: ModelSpec) -> tuple[float, bool, int]:
        d = math.log(params / m.params) ** 2 + math.log(active / m.active_params) ** 2
        return round(d, 12), m.has_vision, len(m.id)   # equal shapes: text-only, then the shorter repo id
    return min(_candidates(moe), key=dist)


def _slope(sh: _Shape, base: _Shape, mid: str, count: str) -> tuple[float, float]:
    """(count at the base's layer count, count per added layer): the count is affine in the layers at the
    base's shares of MoE and sliding layers, so two points on that line give it."""
    at = getattr(sh.with_layers(base.layers, base).spec(mid), count)
    twice = getattr(sh.with_layers(2 * base.layers, base).spec(mid), count)
    return at, (twice - at) / base.layers


def _fit_dense(sh: _Shape, base: _Shape, params: float, mid: str) -> _Shape:
    at, per_layer = _slope(sh, base, mid, "params")
    sh = sh.with_layers(round(base.layers + (params - at) / per_layer), base)
    # the last layer's rounding: FFN width, multiples of 64
    gap = params - sh.spec(mid).params
    mats = 3 if sh.gated else 2
    return replace(sh, ffn_dense=_round_to(sh.ffn_dense + gap / (sh.layers * mats * sh.hidden), 64))


def _fit_moe(sh: _Shape, base: _Shape, params: float, active: float, mid: str) -> _Shape:
    """Layers for the active count, routed experts for the total, the expert width for what rounding leaves.

    Per token, active = NR + R k / E and total = NR + R, with NR the parameters outside the routed experts
    (affine in the layers) and R the routed experts' parameters. At the base's expert width the two give the
    expert count E; E is rounded to an EP-friendly multiple (of the largest power of two <= E/8), and for each
    rounding the layers come from NR = (A - T k/E) / (1 - k/E) and the expert width from R = T - NR; the
    rounding that moves the expert width and the depth least wins. When few experts sit idle per token (a
    total close to the active count) that equation is sensitive to the rounding, so finer splits are tried
    too (k and the count times m, each expert 1/m as wide), as fine-grained MoE designs do (DeepSeekMoE,
    arXiv 2401.06066)."""
    mats = 3 if sh.gated else 2
    k, f0 = sh.experts_per_token, sh.ffn_expert
    experts = float(sh.experts)
    for _ in range(4):      # expert count at the base's width: active -> layers, total -> experts
        t = replace(sh, experts=max(k + 1, round(experts)))
        a_at, a_per = _slope(t, base, mid, "active_params")
        t_at, t_per = _slope(t, base, mid, "params")
        layers = base.layers + (active - a_at) / a_per
        moe = layers * base.moe_layers / base.layers
        experts = t.experts + (params - (t_at + t_per * (layers - base.layers))) / (moe * (mats * t.hidden * f0 + t.hidden))
    # Few idle experts per token make NR = (A - T k/E)/(1 - k/E) sensitive to rounding E: try finer splits.
    grains = range(1, 33) if experts < k + 8 else range(1, 2)
    best: tuple[float, _Shape] | None = None
    fallback: tuple[float, _Shape] | None = None
    for m in grains:
        g = replace(sh, experts_per_token=k * m, ffn_expert=_round_to(f0 / m, 16)) if m > 1 else sh
        ref, exact = f0 / m, experts * m
        step = 2 ** max(0, int(math.floor(math.log2(max(exact, 1.0) / 8))))
        options = {e for e in (step * math.floor(exact / step), step * math.ceil(exact / step)) if e > k * m}
        for e in sorted(options):
            t = replace(g, experts=e)
            nr_at, nr_per = (a - b for a, b in zip(_slope(t, base, mid, "params"),
                                                    _slope(t, base, mid, "expert_params")))
            share = t.experts_per_token / e
            guess = base.layers + ((active - params * share) / (1 - share) - nr_at) / nr_per
            for n in {max(1, math.floor(guess)), max(1, math.ceil(guess))}:
                u = t.with_layers(n, base)
                sp = u.spec(mid)
                width = (params - (sp.params - sp.expert_params)) / (u.moe_layers * e * mats * u.hidden)
                if width < 16:
                    continue
                u = replace(u, ffn_expert=_round_to(width, 16))
                sp = u.spec(mid)
                err = max(abs(sp.params / params - 1), abs(sp.active_params / active - 1))
                # the shape least far from the base's expert width, the depth the counts ask, and its split
                score = abs(math.log(u.ffn_expert / ref)) + abs(math.log(n / layers)) + 0.25 * math.log2(m)
                if err <= TOLERANCE / 2 and (best is None or score < best[0]):
                    best = (score, u)
                if fallback is None or err < fallback[0]:
                    fallback = (err, u)
    if best is not None:
        return best[1]
    return fallback[1] if fallback is not None else sh


def _check_size(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise InputError(field, f"needs a positive number of parameters in billions, not {value!r}")
    return float(value)


@lru_cache(maxsize=512)
def derive_model(params_b: float, active_params_b: float | None = None, *,
                 name: str | None = None) -> tuple[ModelSpec, str]:
    """A ModelSpec with `params_b` total and `active_params_b` active parameters (billions; within 3 %), and
    a one-line note saying how it was derived. InputError (naming the field) for non-positive counts, an
    active count above the total, or a size no catalog shape scales to."""
    total_b = _check_size(params_b, "params_b")
    active_b = total_b if active_params_b is None else _check_size(active_params_b, "active_params_b")
    if active_b > total_b * (1 + 1e-9):
        raise InputError("active_params_b", f"{active_b:g}B active is more than the {total_b:g}B total")
    moe = active_b < total_b * (1 - MOE_GAP)
    params, active = total_b * 1e9, active_b * 1e9
    base_spec = _nearest(params, active, moe)
    mid = name or (f"derived-{total_b:g}B-A{active_b:g}B" if moe else f"derived-{total_b:g}B")
    base = _Shape.of(base_spec)
    ratio = (active if moe else params) / (base_spec.active_params if moe else base_spec.params)
    sh = _widen(base, ratio ** (1 / 3))
    sh = _fit_moe(sh, base, params, active, mid) if moe else _fit_dense(sh, base, params, mid)
    spec = sh.spec(mid)
    for field, want, got in (("params_b", params, spec.params), ("active_params_b", active, spec.active_params)):
        if abs(got / want - 1) > TOLERANCE:
            raise InputError(field, f"no catalog shape scales to {total_b:g}B total / {active_b:g}B active "
                             f"(nearest {base_spec.id} gives {got / 1e9:.3g}B); give a catalog model id")
    what = (f"{sh.moe_layers} MoE + {sh.layers - sh.moe_layers} dense layers, {sh.experts} routed experts "
            f"(top-{sh.experts_per_token}) of width {sh.ffn_expert}" if moe else
            f"{sh.layers} layers, FFN {sh.ffn_dense}")
    note = (f"{mid}: shape scaled from {base_spec.id} ({base_spec.params / 1e9:.1f}B / "
            f"{base_spec.active_params / 1e9:.1f}B active, {base.layers} layers, hidden {base.hidden}): "
            f"hidden {sh.hidden}, {sh.heads} heads ({sh.kv_heads} KV), {what}; "
            f"{spec.params / 1e9:.1f}B total / {spec.active_params / 1e9:.1f}B active")
    return spec, note
