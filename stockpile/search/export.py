"""Turn a search candidate into a DeploySpec the deploy layer renders for vLLM, SGLang or Kubernetes."""
from __future__ import annotations

import math
from typing import Any

from stockpile.catalog.chips import Chip
from stockpile.deploy.spec import DeploySpec, DisaggSpec, RoleSpec, SpeculativeSpec
from stockpile.search.serving import Candidate

QUANTIZATION = {"fp8": "fp8", "int4": "awq", "fp4": "modelopt_fp4", "int8": None}


def _role(layout: dict[str, int], instances: int) -> RoleSpec:
    tp, adp, pp, ep = layout["attn_tp"], layout["attn_dp"], layout["pp"], layout["moe_ep"]
    if adp > 1:       # attention DP over the instance: engines spell it tp=world, dp=world, attention_dp
        return RoleSpec(instances=instances, tp=adp, pp=pp, ep=ep, dp=adp, attention_dp=True)
    return RoleSpec(instances=instances, tp=tp, pp=pp, ep=ep, dp=1, attention_dp=False)


def deploy_spec(c: Candidate, *, model_id: str, chip: Chip, engine: str, isl: float, osl: float) -> DeploySpec:
    """The launch spec for candidate `c` (engine: vllm or sglang)."""
    gpn = min(8, max(chip.scaleup_size, 1)) if chip.scaleup_size < 72 else 4   # NVL72 trays hold 4 GPUs
    max_len = int(2 ** math.ceil(math.log2(isl + osl + 64)))
    spec_dec = SpeculativeSpec(method="mtp", num_draft_tokens=c.spec_draft) if c.spec_draft else None
    common: dict[str, Any] = dict(model_id=model_id, chip_id=chip.id, gpus_per_node=gpn, engine=engine,
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
