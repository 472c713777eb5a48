"""What the search layer hands to the deploy layer: one serving configuration, engine-neutral.

Parallelism vocabulary (the engines disagree, so it is fixed here and translated per engine):

* ``tp`` x ``pp`` GPUs run one model copy (tensor x pipeline parallel).
* ``dp`` without ``attention_dp``: ``dp`` data-parallel replicas *inside one engine process group*
  (one endpoint, the engine balances requests), so an instance holds ``tp*pp*dp`` GPUs.
* ``dp`` with ``attention_dp``: attention runs as ``dp`` data-parallel groups *inside* the TP group
  (MoE/MLA models; SGLang ``--attn-dp-size``, the successor of ``--dp-size N --enable-dp-attention``),
  so an instance holds ``tp*pp`` GPUs and ``tp`` must be divisible by ``dp``.
* ``ep`` is the expert-parallel width (1 = none). SGLang 0.5.23 requires ``ep_size == tp_size``
  (arg_groups/parallel_hook.py: ``ep_size * moe_dp_size == tp_size``); vLLM 0.33.0's
  ``--enable-expert-parallel`` is a switch whose width is the flattened TP x DP group
  (model_executor/layers/fused_moe/config.py ``flatten_tp_across_dp``).
* ``replicas`` independent copies of the instance (separate pods / processes behind a Service).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stockpile.errors import StockpileError

Engine = Literal["vllm", "sglang"]
WeightDtype = Literal["bf16", "fp16", "fp8", "int8", "int4", "fp4"]
KvDtype = Literal["bf16", "fp16", "fp8"]


def _pos() -> Any:
    """A positive int field defaulting to 1 (fresh FieldInfo per field)."""
    return Field(default=1, ge=1)


# KV-transfer backends each engine ships for prefill/decode disaggregation, and the name it uses.
# vLLM 0.33.0: vllm/distributed/kv_transfer/kv_connector/factory.py (no NCCL connector is registered).
# SGLang 0.5.23: --disaggregation-transfer-backend choices (data/engines/sglang.yaml).
PD_TRANSFER: dict[str, dict[str, str]] = {
    "vllm": {"nixl": "NixlConnector", "mooncake": "MooncakeConnector"},
    "sglang": {"nixl": "nixl", "mooncake": "mooncake"},
}


# --dtype values shared by vLLM and SGLang (torch dtype names) for 16-bit checkpoints
TORCH_DTYPE = {"bf16": "bfloat16", "fp16": "float16"}


class DeployError(StockpileError, ValueError):
    """A spec the deploy layer cannot turn into a working launch; the message names field and fix."""

    def __init__(self, message: str, entries: list[str] | None = None) -> None:
        super().__init__(message)
        self.entries = entries or [message]


def _describe(exc: ValidationError) -> DeployError:
    entries = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        inner = (err.get("ctx") or {}).get("error")
        if isinstance(inner, DeployError):  # raised by our validators (or a nested model's __init__)
            entries += [e if not loc or e.startswith(loc + ".") else f"{loc}.{e}" for e in inner.entries]
            continue
        fix = {
            "extra_forbidden": "remove it (unknown field; check the spelling against DeploySpec)",
            "missing": "set it",
            "literal_error": "use one of the listed values",
        }.get(err["type"], "give a value of the stated type/range")
        entries.append(f"{loc or 'spec'}: {err['msg']} (got {err.get('input')!r}); fix: {fix}")
    return DeployError("; ".join(entries), entries)


class _Model(BaseModel):
    """Frozen, closed pydantic model whose every validation failure surfaces as DeployError."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _describe(exc) from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            raise _describe(exc) from None


class SpeculativeSpec(_Model):
    """Speculative decoding: ``mtp`` uses the model's own MTP head; eagle/eagle3 need a draft model."""

    method: Literal["mtp", "eagle", "eagle3", "ngram"]
    num_draft_tokens: int = Field(ge=1)
    draft_model: str | None = None

    @model_validator(mode="after")
    def _draft(self) -> SpeculativeSpec:
        if self.method in ("eagle", "eagle3") and not self.draft_model:
            raise DeployError(f"speculative.draft_model: method={self.method!r} needs a draft model; "
                              "fix: set draft_model to the EAGLE head's HF repo id")
        if self.method in ("mtp", "ngram") and self.draft_model:
            raise DeployError(f"speculative.draft_model: method={self.method!r} takes no draft model; "
                              "fix: drop draft_model or use method 'eagle'/'eagle3'")
        return self


class RoleSpec(_Model):
    """Layout of one side (prefill or decode) of a disaggregated deployment."""

    instances: int = _pos()
    tp: int = _pos()
    pp: int = _pos()
    ep: int = _pos()
    dp: int = _pos()
    attention_dp: bool = False
    chip_id: str | None = None          # the pool's own chip where it differs from the deployment's (mixed pairs)


class DisaggSpec(_Model):
    """Prefill/decode disaggregation: two pools of instances and the KV-cache transport between them."""

    prefill: RoleSpec
    decode: RoleSpec
    kv_transfer: Literal["nixl", "mooncake", "nccl"] = "nixl"


@dataclass(frozen=True)
class Layout:
    """One launchable role: ``instances`` copies of an engine spanning ``nodes`` pods/hosts."""

    role: Literal["serve", "prefill", "decode"]
    instances: int
    tp: int
    pp: int
    ep: int
    dp: int
    attention_dp: bool
    gpus_per_node: int

    @property
    def gpus(self) -> int:
        """GPUs one instance holds (see module docstring for the dp/attention_dp rule)."""
        return self.tp * self.pp * (1 if self.attention_dp else self.dp)

    @property
    def nodes(self) -> int:
        """Hosts (pods) one instance spans; 1 when it fits a node."""
        return max(1, self.gpus // self.gpus_per_node)

    @property
    def gpus_per_pod(self) -> int:
        return min(self.gpus, self.gpus_per_node)


class DeploySpec(_Model):
    """One serving configuration to export.

    model_id: HF repo id; chip_id: catalog id (e.g. "h800-sxm-80gb"); gpus_per_node: GPUs per host.
    tp/pp/ep/dp/attention_dp: instance layout (module docstring); replicas: copies of the instance.
    weight_dtype/kv_dtype/quantization: numerics (quantization = engine method hint, e.g. "awq",
    "modelopt_fp4"; checked against the engine's flag table when the command is built).
    max_num_seqs, max_num_batched_tokens (chunked-prefill budget), max_model_len,
    gpu_memory_utilization, prefix_caching: scheduler/memory knobs. speculative, disaggregated: see
    their models; with ``disaggregated`` the role layouts come from it and the top-level layout
    fields are unused. port / served_model_name: the OpenAI-compatible endpoint.
    """

    model_id: str = Field(min_length=1)
    chip_id: str = Field(min_length=1)
    gpus_per_node: int = Field(default=8, ge=1)
    engine: Engine
    tp: int = _pos()
    pp: int = _pos()
    ep: int = _pos()
    dp: int = _pos()
    attention_dp: bool = False
    weight_dtype: WeightDtype = "bf16"
    kv_dtype: KvDtype = "bf16"
    quantization: str | None = None
    max_num_seqs: int = Field(default=256, ge=1)
    max_num_batched_tokens: int | None = Field(default=None, ge=1)
    max_model_len: int = Field(ge=1)
    gpu_memory_utilization: float = Field(default=0.9, gt=0.0, le=1.0)
    prefix_caching: bool = True
    speculative: SpeculativeSpec | None = None
    disaggregated: DisaggSpec | None = None
    replicas: int = _pos()
    port: int = Field(default=8000, ge=1, le=65535)
    served_model_name: str | None = None

    @property
    def quantization_method(self) -> str | None:
        """The engine's quantization method: the one given, else fp8 for fp8 weights (both engines' spelling)."""
        return self.quantization or ("fp8" if self.weight_dtype == "fp8" else None)

    @property
    def kv_follows_activations(self) -> bool:
        """True when the KV cache keeps the activations' dtype, which both engines express as 'auto'."""
        return self.kv_dtype == ("fp16" if self.weight_dtype == "fp16" else "bf16")

    def layouts(self) -> list[Layout]:
        """The roles to launch: ``serve`` alone, or ``prefill`` + ``decode`` when disaggregated."""
        if self.disaggregated is None:
            return [Layout("serve", self.replicas, self.tp, self.pp, self.ep, self.dp,
                           self.attention_dp, self.gpus_per_node)]
        pd = self.disaggregated
        return [Layout("prefill", pd.prefill.instances, pd.prefill.tp, pd.prefill.pp, pd.prefill.ep,
                       pd.prefill.dp, pd.prefill.attention_dp, self.gpus_per_node),
                Layout("decode", pd.decode.instances, pd.decode.tp, pd.decode.pp, pd.decode.ep,
                       pd.decode.dp, pd.decode.attention_dp, self.gpus_per_node)]

    def layout(self, role: str | None = None) -> Layout:
        """The layout for ``role`` (None = the only one; required when disaggregated)."""
        found = {lay.role: lay for lay in self.layouts()}
        if role is None:
            if self.disaggregated is not None:
                raise DeployError("role: a disaggregated spec has two roles; fix: pass role='prefill' "
                                  "or role='decode'")
            return found["serve"]
        if role not in found:
            raise DeployError(f"role: {role!r} is not a role of this spec; fix: use one of {sorted(found)}")
        return found[role]

    @model_validator(mode="after")
    def _check(self) -> DeploySpec:
        if self.disaggregated is not None:
            backends = PD_TRANSFER[self.engine]
            if self.disaggregated.kv_transfer not in backends:
                raise DeployError(
                    f"disaggregated.kv_transfer: {self.disaggregated.kv_transfer!r} is not supported by "
                    f"{self.engine} (it ships {sorted(backends)}); fix: use one of those")
            if self.replicas != 1:
                raise DeployError("replicas: a disaggregated spec scales through disaggregated.prefill/"
                                  "decode.instances; fix: set replicas=1")
        for lay in self.layouts():
            _check_layout(self, lay)
        if self.engine == "sglang" and self.kv_dtype == "fp16" and self.weight_dtype != "fp16":
            raise DeployError("kv_dtype: SGLang 0.5.23 has no explicit fp16 KV cache (--kv-cache-dtype "
                              "choices lack it; 'auto' follows the model dtype); fix: use kv_dtype "
                              "'bf16'/'fp8', or weight_dtype 'fp16'")
        return self


def _check_layout(spec: DeploySpec, lay: Layout) -> None:
    where = "" if lay.role == "serve" else f"disaggregated.{lay.role}."
    gpn = spec.gpus_per_node
    if lay.attention_dp:
        if lay.dp < 2:
            raise DeployError(f"{where}attention_dp: needs dp >= 2 attention groups (got dp={lay.dp}); "
                              "fix: set dp to the attention-DP width or attention_dp=False")
        if lay.tp % lay.dp:
            raise DeployError(f"{where}dp: with attention_dp the {lay.dp} attention groups split the TP "
                              f"group, so tp={lay.tp} must be divisible by dp; fix: pick dp dividing tp")
    shape = "tp*pp" if lay.attention_dp or lay.dp == 1 else "tp*pp*dp"
    if (lay.gpus < gpn and gpn % lay.gpus) or (lay.gpus > gpn and lay.gpus % gpn):
        raise DeployError(
            f"{where}tp/pp: {shape} = {lay.gpus} GPUs per instance does not tile nodes of "
            f"gpus_per_node={gpn}; fix: use a divisor of {gpn} (single node) or a multiple of {gpn} "
            "(whole nodes)")
    if lay.ep > 1:
        if spec.engine == "sglang" and lay.ep != lay.tp:
            raise DeployError(f"{where}ep: SGLang requires ep_size == tp_size (ep={lay.ep}, tp={lay.tp}); "
                              f"fix: set ep={lay.tp} or ep=1")
        width = lay.gpus // lay.pp
        if spec.engine == "vllm" and lay.ep != width:
            raise DeployError(f"{where}ep: vLLM's --enable-expert-parallel spans the whole TPxDP group "
                              f"({width} GPUs), got ep={lay.ep}; fix: set ep={width} or ep=1")
