"""Calibration parameters: a few global, physically meaningful efficiency factors.

They live in ``stockpile/data/calibration/inference.yaml``, written by ``stockpile calibrate`` with the
date and the data they were fitted on. Groups: per chip *family* (how close kernels get to the peak and to
the memory bandwidth), per *engine* (step overhead, kernel quality), and global (shape of the GEMM
efficiency curve, attention efficiency, communication, MoE imbalance, low-precision GEMM efficiency).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import yaml

if TYPE_CHECKING:
    from stockpile.catalog.chips import Chip

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml when available
T = TypeVar("T")


# Defaults are priors before any fit (and the values used for families with no measured data).
GLOBAL_DEFAULTS: dict[str, float] = {
    "gemm_m_half": 40.0,        # GEMM rows (tokens) at which a GEMM reaches half its peak efficiency
    "attn_eff": 0.55,           # flash-attention prefill: fraction of the GEMM efficiency
    "comm_eff": 0.7,            # achieved fraction of link bandwidth in collectives
    "comm_latency_s": 8e-6,     # per collective step latency on the scale-up fabric
    "moe_imbalance": 1.25,      # hottest expert rank load / mean load
    "fp8_gemm_eff": 0.85,       # fp8 GEMM efficiency relative to bf16 (scaling, smaller tiles)
    "fp4_gemm_eff": 0.7,
    "int8_gemm_eff": 0.85,
    "dequant_eff": 0.8,         # weight-only (w4a16/w8a16) GEMMs: compute-side efficiency factor
    "reserve_gb": 4.0,          # engine reserve per GPU: activations, CUDA graphs, workspace
    "burst_tail": 0.5,          # drain tail of a burst run, in request lifetimes at the running batch
    "burst_tail_var": 1.0,      # variable-length datasets: the exponential-length drain's multiplier (serving.py)
    "overlap_comm": 0.3,        # fraction of EP/TP communication hidden behind compute
    "sync_eff": 0.5,            # how much of a fixed-length closed loop's lockstep prefill queue persists
    "gemm_n_half": 128.0,       # GEMM N (output width per GPU) at which tile utilisation halves efficiency
    "act_rw": 8.0,              # hidden-state reads/writes per layer and token outside GEMMs
    "a2a_latency_s": 4e-5,      # latency of one expert all-to-all phase (dispatch or combine)
    "expert_mem_eff": 0.85,     # bandwidth share of grouped expert GEMMs relative to dense GEMMs
    "fp4_mem_eff": 1.0,         # bandwidth share of a dense GEMM streaming native 4-bit (NVFP4/MXFP4) weights
    "pd_handoff_s": 0.02,       # disaggregated serving: prefill-to-decode hand-off (routing, transfer set-up)
    # bytes per request and vocabulary entry that an engine sizing its KV cache after a profiling pass (vLLM) holds
    # at that pass's sampling step: bf16 logits, their fp32 copy, top-k/top-p sort values and indices, probabilities
    "sampler_bytes": 14.0,
}
# moe_eff: a chip family's grouped-expert (MoE) kernels relative to its dense GEMMs (kernel maturity: routed-expert
# kernels on a young software stack lag its dense GEMM library)
FAMILY_DEFAULTS: dict[str, float] = {"gemm_eff": 0.7, "mem_eff": 0.8, "moe_eff": 1.0}
# step_s: per step (scheduling, launch); seq_s: per running sequence and step (sampling, detokenising,
# bookkeeping); ttft_s: fixed latency per request; eager_layer_s: host
# launch time per layer of a step run outside CUDA graphs; eager_moe_s: the same, added per MoE layer (routing,
# permutes, grouped GEMMs and their host-side synchronisation); admit_s: serial front-end work per request
# (HTTP, tokenising, scheduling its admission): a burst of N prompts reaches the engine over N x admit_s;
# moe_layer_s: device time per MoE layer and step that no roofline term carries (router, top-k, token permute and
# un-permute kernels), for a 256-expert layer (operators.expert_list_scale: part of it walks the expert list).
# An engine may also carry its own comm_latency_s (its all-reduce kernels: TensorRT-LLM's one-shot NVLink
# all-reduce), which overrides the global one for it
# spec_seq_s: host time per running sequence, step and token it verifies beyond the first under speculative
# decoding (draft positions, tree masks, accepted-token bookkeeping), on top of seq_s; near nil until fitted
ENGINE_DEFAULTS: dict[str, float] = {"step_s": 0.002, "seq_s": 5e-5, "kernel_eff": 1.0, "ttft_s": 0.02,
                                     "eager_layer_s": 1e-4, "eager_moe_s": 2e-4, "admit_s": 1e-3, "moe_layer_s": 1e-6, "stream_s": 1e-4,
                                     "spec_seq_s": 1e-7}

# Families that share kernels and behaviour closely enough to share a calibration.
FAMILY_GROUPS = {
    "ampere": "ampere", "ada": "ada", "hopper": "hopper", "blackwell": "blackwell",
    "blackwell-ultra": "blackwell", "volta": "ampere", "cdna2": "cdna3", "cdna3": "cdna3", "cdna4": "cdna4",
    "ascend": "ascend", "gaudi": "other", "tpu": "other", "kunlun": "other", "cambricon": "other",
    "hygon": "other", "moore-threads": "other", "biren": "other", "t-head": "other",
}


@cache
def engine_defaults() -> dict[str, dict[str, Any]]:
    """Engine defaults that shape serving when a run does not set them (data/engines/defaults.yaml)."""
    path = resources.files("stockpile") / "data" / "engines" / "defaults.yaml"
    return yaml.load(path.read_text(), Loader=_Loader)


def hybrid_kv(engine: str) -> float:
    """1.0 if the engine keeps only the window of sliding-window layers in its KV cache (defaults.yaml)."""
    return 1.0 if engine_defaults()[engine].get("hybrid_kv") else 0.0


def engine_limits(engine: str, chip: "Chip", cfg: Any, attn_dp: Any = 1.0, tp: Any = 1.0) -> tuple[Any, Any, Any]:
    """(max running sequences per attention-DP rank, prefill chunk tokens, memory fraction) from the run (`cfg`:
    perf.inference.Configs) or the engine defaults. Each attention-DP rank schedules its own batch; an engine whose stated cap is shared by its
    ranks (defaults.yaml `max_seqs_shared_by_dp`) has it divided among them."""
    d = engine_defaults()[engine]
    small = chip.memory_bytes < 70 * 2**30 or chip.family in d.get("small_gpu_families", ())
    if cfg.max_seqs is not None:
        max_seqs = cfg.max_seqs
        if d.get("max_seqs_shared_by_dp"):
            max_seqs = np.maximum(np.asarray(cfg.max_seqs, float) / np.asarray(attn_dp, float), 1.0)
    else:
        max_seqs = d.get("max_num_seqs_small_gpu", d["max_num_seqs"]) if small else d["max_num_seqs"]
    chunk = cfg.chunk if cfg.chunk is not None else (
        d.get("max_num_batched_tokens_small_gpu", d["max_num_batched_tokens"]) if small
        else d["max_num_batched_tokens"])
    if cfg.mem_util is not None:
        mem_util = cfg.mem_util
    elif chip.vendor in d.get("mem_fraction_reserve_mib", {}).get("vendors", ()):
        mem_util = reserve_fraction(d, chip, cfg.chunk, attn_dp, tp)
    else:
        mem_util = d["gpu_memory_utilization"]
    return max_seqs, chunk, mem_util


def reserve_fraction(d: dict[str, Any], chip: "Chip", chunk: Any = None, attn_dp: Any = 1.0, tp: Any = 1.0) -> Any:
    """An engine's default memory fraction where it derives it from what it holds back (SGLang's
    --mem-fraction-static): (memory - reserved) / memory, reserved from the prefill chunk (`chunk` where the run
    states it, else the engine's tier for the GPU's memory), the CUDA-graph batch cap and the GPU count
    (defaults.yaml `mem_fraction_reserve_mib`). `tp`: GPUs of tensor x pipeline parallelism in the instance."""
    r = d["mem_fraction_reserve_mib"]
    mib = chip.memory_bytes / 2**20
    gib = mib / 1024
    gpus, dp = np.asarray(tp, float), np.asarray(attn_dp, float)
    if chunk is None:
        chunk = next(c for below, c in r["chunk_tiers"] if gib < below)
    small, large = next((s, lg) for below, s, lg in r["graph_tiers"] if gib < below)
    graph = np.where(gpus < 4, small, large)
    reserved = (r["base"] + r["per_chunk_token"] * np.maximum(np.asarray(chunk, float), r["min_chunk"])
                + r["per_graph_bs"] * graph + r["per_eighth_gpus"] * gpus / 8
                + np.where(dp > 1, (r["per_graph_bs_dp"] + np.where(graph > 300, r["per_graph_bs_dp_over_300"], 0.0))
                           * graph * dp, 0.0))
    if mib > r["floor_above_mib"]:
        reserved = np.maximum(reserved, r["floor"])
    frac = (mib - reserved) / mib
    return float(frac) if np.ndim(frac) == 0 else frac


@cache
def engine_graph_limits(engine: str, family: str = "") -> dict[str, float]:
    """Not fitted: the largest decode step the engine replays from a CUDA graph; larger steps launch their
    kernels from the host like a prefill step. Engines without an entry are not capped. On a chip family where
    the engine's port captures each layer's graph in pieces with attention launched from the host in every step
    (defaults.yaml `piecewise_graph_families`: vLLM-Ascend's default graph mode), no step is a whole graph."""
    d = engine_defaults().get(engine) or {}
    by_tokens = 1.0 if d.get("cuda_graph_unit") == "tokens" else 0.0
    if FAMILY_GROUPS.get(family, family) in (d.get("piecewise_graph_families") or ()):
        return {"graph_max": 0.0, "graph_max_small_tp": 0.0, "graph_by_tokens": by_tokens}
    cap = float(d.get("cuda_graph_max", 1e9))
    return {"graph_max": cap, "graph_max_small_tp": float(d.get("cuda_graph_max_small_tp", cap)),
            "graph_by_tokens": by_tokens}


@cache
def engine_memory(engine: str) -> dict[str, float]:
    """Not fitted: kv_free 1 where the engine's memory fraction is a share of the memory left free after the
    weights (defaults.yaml `memory_fraction_of: free`, TensorRT-LLM), 0 where it is a share of the whole;
    profile_sampler 1 where the engine sizes its KV cache after a profiling pass whose sampling step runs for
    max_seqs requests at once (defaults.yaml `profile_sampler`, vLLM); kv_reserve_out, the share of a running
    request's remaining output its engine holds KV cache for (defaults.yaml `kv_reserve_output`; all of it where
    the engine does not say)."""
    d = engine_defaults().get(engine) or {}
    return {"kv_free": 1.0 if d.get("memory_fraction_of") == "free" else 0.0,
            "profile_sampler": 1.0 if d.get("profile_sampler") else 0.0,
            "kv_reserve_out": float(d.get("kv_reserve_output", 1.0))}


def _release(version: str | None) -> tuple[int, int] | None:
    """(major, minor) of a version string such as 'v0.5.3.post1', or None."""
    m = re.match(r"v?(\d+)\.(\d+)", version.strip()) if version else None
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_release(version: str | None) -> str | None:
    """A stated engine release, checked: it must start with a release number (InputError otherwise)."""
    if version is not None and _release(version) is None:
        from stockpile.errors import InputError
        raise InputError("engine_version", f"'{version}' is not a release number; give the engine's release such as "
                                           "0.6.3, v0.5.3.post1 or 1.2.0rc6 (or leave it out for the current release)")
    return version


def release_notes(engine: str, version: str | None) -> list[str]:
    """What a stated release is predicted as: its release family, and, for a release newer than any with
    measured rows (defaults.yaml `newest_validated`), that newest one."""
    key = engine_key(engine, version)
    notes = [f"{engine} {version}: calibrated as the {key} release family (its own scheduler costs and kernel "
             "maturity where the data show them; the rest as the current release)"] if key != engine else []
    rel, newest = _release(version), _release(str(engine_defaults().get(engine, {}).get("newest_validated", "")))
    if rel is not None and newest is not None and rel > newest:
        notes.append(f"{engine} {version} is newer than any release in the validation data (newest "
                     f"{newest[0]}.{newest[1]}): predicted as the {engine} {newest[0]}.{newest[1]} family; a newer "
                     "release's kernels and scheduler may differ")
    return notes


def engine_key(engine: str, version: str | None = None, v0: bool = False) -> str:
    """The calibration key of an engine release family. vLLM before 0.8 (or run with its V0 engine) has its
    own scheduler and per-sequence costs ("vllm-v0"), and its V1 releases before 0.12 their own host costs
    ("vllm-v0.11"); SGLang before 0.5 ("sglang-v0.4") and TensorRT-LLM before
    1.0 ("trtllm-v0") have their own host constants, and a chip family's young kernels under an older release
    are a regime of their own (`regimes`). An unstated version is the current release."""
    rel = _release(version)
    if engine == "vllm" and (v0 or (rel is not None and rel < (0, 8))):
        return "vllm-v0"
    if engine == "vllm" and rel is not None and rel < (0, 12):
        return "vllm-v0.11"
    if engine == "sglang" and rel is not None and rel < (0, 5):
        return "sglang-v0.4"
    if engine == "trtllm" and rel is not None and rel < (1, 0):
        return "trtllm-v0"
    return engine


@dataclass(frozen=True)
class Params:
    """Resolved scalars for one (chip family, engine) pair."""

    gemm_eff: float
    mem_eff: float
    moe_eff: float
    step_s: float
    seq_s: float
    spec_seq_s: float
    kernel_eff: float
    ttft_s: float
    eager_layer_s: float
    eager_moe_s: float
    admit_s: float
    stream_s: float
    moe_layer_s: float
    gemm_m_half: float
    attn_eff: float
    comm_eff: float
    comm_latency_s: float
    moe_imbalance: float
    fp8_gemm_eff: float
    fp4_gemm_eff: float
    int8_gemm_eff: float
    dequant_eff: float
    reserve_gb: float
    burst_tail: float
    burst_tail_var: float
    overlap_comm: float
    sync_eff: float
    gemm_n_half: float
    act_rw: float
    a2a_latency_s: float
    expert_mem_eff: float
    fp4_mem_eff: float
    pd_handoff_s: float
    graph_max: float
    graph_max_small_tp: float
    sampler_bytes: float
    kv_free: float              # 1: the memory fraction is of the memory free after weights (TensorRT-LLM)
    profile_sampler: float      # 1: the KV cache is sized after a profiling pass that samples max_seqs requests (vLLM)
    kv_reserve_out: float       # share of a running request's remaining output its engine holds KV cache for
    graph_by_tokens: float

    @classmethod
    def stack(cls, items: list["Params"]) -> "Params":
        """Field-wise arrays (one entry per configuration) for one-pass evaluation of mixed rows."""
        return cls(**{f.name: np.array([getattr(i, f.name) for i in items]) for f in fields(cls)})  # type: ignore[arg-type]


@dataclass
class Calibration:
    global_: dict[str, float]
    families: dict[str, dict[str, float]]
    engines: dict[str, dict[str, float]]
    meta: dict[str, Any]
    # one chip family x engine's own values ("hopper/vllm": {...}), applied last: a user profile refitted
    # on its own runs (stockpile calibrate --profile NAME runs.csv) moves only the regimes those runs cover
    regimes: dict[str, dict[str, float]] = field(default_factory=dict)

    def params(self, family: str, engine: str) -> Params:
        """Parameters of a chip family and an engine, or an engine release family ("vllm-v0"), which falls
        back to its engine's where it has no fit of its own."""
        group = FAMILY_GROUPS.get(family, family)
        fam = self.families.get(group) or self.families.get("default") or {}
        base = engine.split("-v")[0]
        eng = {**(self.engines.get(base) or {}), **(self.engines.get(engine) or {})} or \
            self.engines.get("default") or {}
        own = {**(self.regimes.get(regime_key(family, base)) or {}), **(self.regimes.get(regime_key(family, engine))
                                                                           or {})}
        vals = {**GLOBAL_DEFAULTS, **self.global_,
                **FAMILY_DEFAULTS, **(self.families.get("default") or {}), **fam,
                **ENGINE_DEFAULTS, **(self.engines.get("default") or {}), **eng, **own, **engine_graph_limits(base, family),
                **engine_memory(base)}
        return Params(**{f.name: float(vals[f.name]) for f in fields(Params)})

    def as_release(self, engine: str, release: str) -> "Calibration":
        """This calibration with `engine` read as its release family `release` ("vllm-v0"): code that looks up
        the engine by name (the serving search) then evaluates that release."""
        if release == engine:
            return self
        engines = {**self.engines, engine: {**(self.engines.get(engine) or {}), **(self.engines.get(release) or {})}}
        regimes = dict(self.regimes)
        for key, values in self.regimes.items():
            fam, _, eng = key.partition("/")
            if eng == release:
                regimes[f"{fam}/{engine}"] = {**(self.regimes.get(f"{fam}/{engine}") or {}), **values}
        return Calibration(global_=self.global_, families=self.families, engines=engines, meta=self.meta,
                           regimes=regimes)

    def to_dict(self) -> dict[str, Any]:
        d = {"meta": self.meta, "global": self.global_, "families": self.families, "engines": self.engines}
        return {**d, "regimes": self.regimes} if self.regimes else d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Calibration":
        return cls(global_=dict(d.get("global") or {}), families=dict(d.get("families") or {}),
                   engines=dict(d.get("engines") or {}), meta=dict(d.get("meta") or {}),
                   regimes=dict(d.get("regimes") or {}))


def regime_key(family: str, engine: str) -> str:
    """The key of a chip family (its calibration group) x engine regime: "hopper/vllm"."""
    return f"{FAMILY_GROUPS.get(family, family)}/{engine}"


def default_calibration() -> Calibration:
    return Calibration(global_=dict(GLOBAL_DEFAULTS), families={"default": dict(FAMILY_DEFAULTS)},
                       engines={"default": dict(ENGINE_DEFAULTS)}, meta={"fitted": None})


class Selection(Generic[T]):
    """Calibrations selected for a block (the CLI's --calibration), innermost last; shared by the inference
    and training models."""

    def __init__(self) -> None:
        self._stack: list[T] = []

    def current(self) -> T | None:
        return self._stack[-1] if self._stack else None

    @contextmanager
    def use(self, cal: T) -> Iterator[T]:
        self._stack.append(cal)
        try:
            yield cal
        finally:
            self._stack.pop()


_selected: Selection[Calibration] = Selection()     # set by use_calibration


def load_calibration() -> Calibration:
    """The calibration selected with `use_calibration` (a user profile), else the shipped fit, else the
    priors when no fit has been written yet."""
    chosen = _selected.current()
    return chosen if chosen is not None else _shipped_calibration()


@cache
def _shipped_calibration() -> Calibration:
    path = resources.files("stockpile") / "data" / "calibration" / "inference.yaml"
    if not path.is_file():
        return default_calibration()
    return Calibration.from_dict(yaml.load(path.read_text(), Loader=_Loader) or {})


def read_calibration(path: str | Path) -> Calibration:
    """A calibration file (a `stockpile calibrate` profile or --out file)."""
    from stockpile.errors import InputError
    try:
        doc = yaml.load(Path(path).read_text(), Loader=_Loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError("calibration", f"cannot read {path}: {exc}") from None
    # a training fit has "global" too, but its "frameworks" never appear in an inference one
    if not isinstance(doc, dict) or not {"global", "engines"} & set(doc) or "frameworks" in doc:
        raise InputError("calibration", f"{path} is not an inference calibration (written by stockpile calibrate)")
    return Calibration.from_dict(doc)


def use_calibration(cal: Calibration) -> AbstractContextManager[Calibration]:
    """Every estimate inside the block uses `cal` instead of the shipped fit."""
    return _selected.use(cal)
