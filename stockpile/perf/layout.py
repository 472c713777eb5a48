"""Parallel layouts: what TP/PP/EP/DP mean for one serving instance, in one normal form.

Engines spell layouts differently: SGLang's ``--tp 32 --dp 32 --enable-dp-attention`` and TensorRT-LLM's
``tp 8, ep 8, attention DP`` both mean "attention data-parallel over the whole instance, experts sharded over
it". :func:`resolve_layout` maps any spelling onto :class:`Layout`: attention TP x attention DP x PP GPUs per
instance, experts split EP x expert-TP over the attention GPUs, and a number of independent replicas.
"""
from __future__ import annotations

from dataclasses import dataclass

from stockpile.errors import InputError


@dataclass(frozen=True)
class Layout:
    """One serving instance = attn_tp * attn_dp * pp GPUs; `replicas` instances in all."""

    attn_tp: int = 1
    attn_dp: int = 1
    pp: int = 1
    moe_ep: int = 1
    moe_tp: int = 1
    replicas: int = 1

    @property
    def gpus_per_instance(self) -> int:
        return self.attn_tp * self.attn_dp * self.pp

    @property
    def gpus(self) -> int:
        return self.gpus_per_instance * self.replicas

    def describe(self) -> str:
        s = f"TP{self.attn_tp}"
        if self.attn_dp > 1:
            s += f" x attnDP{self.attn_dp}"
        if self.pp > 1:
            s += f" x PP{self.pp}"
        if self.moe_ep > 1:
            s += f" (EP{self.moe_ep}" + (f", expertTP{self.moe_tp})" if self.moe_tp > 1 else ")")
        if self.replicas > 1:
            s += f" x {self.replicas} replicas"
        return s


def _pos(name: str, v: int | None) -> int | None:
    if v is None:
        return None
    if int(v) != v or v < 1:
        raise InputError(name, f"must be a positive integer, got {v}")
    return int(v)


def resolve_layout(*, gpus: int, tp: int | None = None, pp: int | None = None, ep: int | None = None,
                   dp: int | None = None, is_moe: bool = False, attention_dp: bool | None = None) -> Layout:
    """Normalise an engine-style (tp, pp, ep, dp) on `gpus` GPUs. Blank degrees take engine defaults.

    Rules, in order: with EP > TP or an explicit attention-DP flag, DP is attention data parallelism inside
    the instance (SGLang/TRT-LLM MoE style); when tp*pp*dp == gpus, DP counts independent replicas; when
    tp*pp == gpus and dp > 1, DP splits the TP group's attention (SGLang ``--dp`` with dp-attention)."""
    gpus = _pos("gpus", gpus) or 1
    tp, pp, ep, dp = _pos("tp", tp), _pos("pp", pp) or 1, _pos("ep", ep) or 1, _pos("dp", dp) or 1
    if tp is None:
        tp = max(1, gpus // (pp * dp)) if ep <= 1 or dp > 1 else max(1, gpus // pp)
    if not is_moe:
        ep = 1
    if attention_dp is None:
        attention_dp = is_moe and dp > 1 and (ep > tp or (tp * pp == gpus and tp % dp == 0 and tp > 1)
                                              or tp * pp * dp != gpus and tp % dp == 0)
    if attention_dp:
        world = max(tp, ep, dp) if ep > tp else tp
        if world % dp:
            raise InputError("dp", f"attention DP {dp} must divide the instance size {world}")
        attn_tp, attn_dp = world // dp, dp
    elif tp * pp * dp == gpus or dp > 1:
        attn_tp, attn_dp = tp, 1
        world = tp
    else:
        attn_tp, attn_dp, world = tp, 1, tp
    inst = world * pp
    if inst > gpus:
        raise InputError("tp", f"the layout needs {inst} GPUs (TP{tp} x PP{pp}"
                               f"{f' x attnDP{dp}' if attention_dp else ''}) but --gpus is {gpus}")
    if gpus % inst:
        raise InputError("gpus", f"{gpus} GPUs do not split into instances of {inst} (TP{tp} x PP{pp})")
    replicas = gpus // inst
    if is_moe:
        moe_ep = min(ep, world) if ep > 1 else 1
        if world % moe_ep:
            raise InputError("ep", f"EP {ep} must divide the {world} GPUs that hold each stage's experts")
        moe_tp = world // moe_ep
    else:
        moe_ep, moe_tp = 1, attn_tp
    return Layout(attn_tp=attn_tp, attn_dp=attn_dp, pp=pp, moe_ep=moe_ep, moe_tp=moe_tp, replicas=replicas)
