"""Turn a search candidate into a DeploySpec the deploy layer renders for vLLM, SGLang or Kubernetes."""
from __future__ import annotations

import math
from typing import Any

from stockpile.catalog.chips import BYTES, Chip
from stockpile.catalog.models import ModelSpec
from stockpile.deploy.spec import DeploySpec, DisaggSpec, RoleSpec, SpeculativeSpec
from stockpile.errors import InputError
from stockpile.search.serving import Candidate

QUANTIZATION = {"fp8": "fp8", "int4": "awq", "fp4": "modelopt_fp4", "int8": None}


def _role(layout: dict[str, int], instances: int) -> RoleSpec:
    tp, adp, pp, ep = layout["attn_tp"], layout["attn_dp"], layout["pp"], layout["moe_ep"]
    if adp > 1:       # attention DP over the instance: engines spell it tp=world, dp=world, attention_dp
        return RoleSpec(instances=instances, tp=adp, pp=pp, ep=ep, dp=adp, attention_dp=True)
    return RoleSpec(instances=instances, tp=tp, pp=pp, ep=ep, dp=1, attention_dp=False)


def _roles(c: Candidate) -> list[tuple[dict[str, Any], Chip | None]]:
    """(attn_tp, attn_dp, pp, moe_ep) of each role of a candidate, with the role's own chip if it has one."""
    from stockpile.catalog.chips import get_chip
    if c.mode == "disaggregated" and c.prefill and c.decode:
        pre_chip = get_chip(c.prefill["chip"]) if c.prefill.get("chip") else None
        return [(c.prefill, pre_chip), (c.decode, None)]
    lay = c.layout
    return [({"attn_tp": lay["tp"], "attn_dp": lay["attn_dp"], "pp": lay["pp"], "moe_ep": lay["ep"]}, None)]


def longest_sequence(model: ModelSpec, chip: Chip, engine: str, c: Candidate, limit: int) -> int:
    """The longest sequence (tokens, at most ``limit``) whose KV cache fits one GPU's KV budget in every
    role of candidate ``c``: the engine refuses to start when one sequence of its context length cannot."""
    from stockpile.perf.calibration import load_calibration
    from stockpile.perf.inference import (
        WEIGHT_BYTES,
        Configs,
        engine_limits,
        hybrid_kv,
        kv_bytes_per_token_gpu,
    )
    from stockpile.perf.inference import weight_bytes_array as weights
    from stockpile.perf.operators import ModelConsts
    from stockpile.perf.serving import kv_budget_bytes, reserve_bytes
    mc = ModelConsts.of(model)
    best = limit
    for lay, role_chip in _roles(c):
        ch = role_chip or chip
        p = load_calibration().params(ch.family, engine)
        tp, dp, pp, ep = (float(lay[k]) for k in ("attn_tp", "attn_dp", "pp", "moe_ep"))
        max_seqs, _, mem_util = engine_limits(engine, ch, Configs(), dp, tp * dp * pp)
        held = float(weights(mc, tp, pp, ep, max(tp * dp / ep, 1.0), WEIGHT_BYTES[c.weight_dtype]))
        budget = float(kv_budget_bytes(ch.memory_bytes, float(mem_util), held,
                                       float(reserve_bytes(p, mc, max_seqs)), p.kv_free))
        kvb = BYTES[c.kv_dtype]

        def need(n: float, tp: float = tp, pp: float = pp, kvb: float = kvb) -> float:
            return n * float(kv_bytes_per_token_gpu(mc, tp, pp, kvb, n, hybrid_kv(engine)))

        if need(best) <= budget:
            continue
        lo, hi = 0, best                  # need() grows with n: bisect the largest n that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if need(mid) <= budget else (lo, mid - 1)
        best = lo
    return best


def context_length(model: ModelSpec, chip: Chip, engine: str, c: Candidate, *, isl: float, osl: float,
                   requested: int | None = None) -> tuple[int, str]:
    """The engine's context length for a candidate, and why: ``requested`` when given; else the model's own
    (``max_position_embeddings``) unless one sequence that long cannot fit its KV memory, then the longest
    that fits (never below the planned input + output)."""
    own = int(model.max_position or 0)
    if requested is not None:
        if requested < 1:
            raise InputError("max_model_len", f"must be a positive number of tokens, got {requested}")
        if own and requested > own:
            raise InputError("max_model_len", f"{requested:,} exceeds the model's own context of {own:,} tokens "
                             f"(max_position_embeddings); give at most {own:,}")
        return requested, f"context length {requested:,} tokens (--max-model-len)"
    planned = int(math.ceil(isl + osl))
    if not own:
        n = int(2 ** math.ceil(math.log2(planned + 64)))
        return n, f"context length {n:,} tokens: the model's config gives no max_position_embeddings"
    fits = longest_sequence(model, chip, engine, c, own)
    if fits >= own:
        return own, f"context length {own:,} tokens: the model's own"
    if fits < planned:
        raise InputError("max_model_len", f"one sequence of the planned {planned:,} tokens does not fit this "
                         "configuration's KV memory; pick another candidate (--rank) or more GPUs")
    step = 256 if fits >= 256 else 1
    n = fits // step * step
    return n, (f"context length {n:,} tokens: the model's own {own:,} does not fit one sequence's KV cache "
               "in this configuration, so the longest that does (--max-model-len to choose)")


def _memory_fraction(c: Candidate, chip: Chip, engine: str) -> float:
    """The memory fraction the launch command sets: the one the search evaluated the candidate at, for the decode
    role's layout and chunk (vLLM's 0.9; SGLang's derived from what it holds back, perf.calibration.reserve_fraction)."""
    from stockpile.perf.calibration import engine_limits
    from stockpile.perf.inference import Configs
    lay, _ = _roles(c)[-1]
    cfg = Configs(chunk=c.chunk, attn_tp=float(lay["attn_tp"]), attn_dp=float(lay["attn_dp"]), pp=float(lay["pp"]))
    return round(float(engine_limits(engine, chip, cfg, cfg.attn_dp, cfg.gpus_per_instance)[2]), 3)


def deploy_spec(c: Candidate, *, model_id: str, chip: Chip, engine: str, isl: float, osl: float,
                max_len: int | None = None) -> DeploySpec:
    """The launch spec for candidate `c` (engine: vllm or sglang); ``max_len`` is the engine's context
    length (see :func:`context_length`; default: input + output rounded up to a power of two)."""
    gpn = min(8, max(chip.scaleup_size, 1)) if chip.scaleup_size < 72 else 4   # NVL72 trays hold 4 GPUs
    max_len = max_len or int(2 ** math.ceil(math.log2(isl + osl + 64)))
    spec_dec = SpeculativeSpec(method="mtp", num_draft_tokens=c.spec_draft) if c.spec_draft else None
    common: dict[str, Any] = dict(model_id=model_id, chip_id=chip.id, gpus_per_node=gpn, engine=engine,
                  gpu_memory_utilization=_memory_fraction(c, chip, engine),
                  weight_dtype=c.weight_dtype, kv_dtype=c.kv_dtype, quantization=QUANTIZATION.get(c.weight_dtype),
                  max_num_seqs=max(8, int(math.ceil(c.batch_per_instance * 1.25))), max_model_len=max_len,
                  max_num_batched_tokens=c.chunk,
                  speculative=spec_dec)
    if c.mode == "disaggregated" and c.prefill and c.decode:
        pre = _role({k: c.prefill[k] for k in ("attn_tp", "attn_dp", "pp", "moe_ep")}, c.prefill["instances"])
        if c.prefill.get("chip"):
            pre = pre.model_copy(update={"chip_id": c.prefill["chip"]})      # a mixed pair: prefill elsewhere
        dec = _role({k: c.decode[k] for k in ("attn_tp", "attn_dp", "pp", "moe_ep")}, c.decode["instances"])
        return DeploySpec(**common, tp=dec.tp, pp=dec.pp, ep=dec.ep, dp=dec.dp, attention_dp=dec.attention_dp,
                          replicas=1, disaggregated=DisaggSpec(prefill=pre, decode=dec, kv_transfer="nixl"))
    lay = c.layout
    role = _role({"attn_tp": lay["tp"], "attn_dp": lay["attn_dp"], "pp": lay["pp"], "moe_ep": lay["ep"]}, 1)
    return DeploySpec(**common, tp=role.tp, pp=role.pp, ep=role.ep, dp=role.dp, attention_dp=role.attention_dp,
                      replicas=lay["replicas"])
