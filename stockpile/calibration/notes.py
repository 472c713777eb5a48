"""What a measured row's free-text notes say that the CSV schema has no column for.

Speculative decoding (draft count, draft tree, accept length), a disaggregated run's prefill and decode pools,
the engine's release and launch flags (token budget, sequence cap, memory fraction, CUDA graphs, chunked
prefill, scheduler intervals), a shared-prefix workload, and the benchmark harness's conventions (InferenceX's
length ratio and prompts per unit of concurrency). `rows.inference_case` reads the columns and calls these.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

import yaml

from stockpile.catalog.dtypes import normalise_dtype

if TYPE_CHECKING:
    from stockpile.calibration.rows import InferenceCase

# Default speculative acceptance: per-position acceptance of a chained draft, accept length
# 1 + p1 + p1*p + p1*p^2 + ... DeepSeek-V3 report (arXiv:2412.19437, sec. 5.4.3): the first drafted token is
# accepted 85-90 % of the time (p1 = 0.85). Deeper positions accept less; p = 0.65 reproduces the accept
# lengths SGLang publishes for 3-step MTP on DeepSeek-R1 (2.8-2.9 on Ascend A3, SGLang NPU best-practice doc).
MTP_P1, DRAFT_P = 0.85, 0.65
# When a source says only "MTP on": the latency recipes (SGLang's DeepSeek --speculative-num-steps 3 with
# 4 draft tokens; TensorRT-LLM's min-latency 3 nextn layers) draft 3 tokens; the throughput recipes that run
# attention data parallel draft 1 (TensorRT-LLM DeepSeek-R1 guide: MTP 1 with enable_attention_dp).
DEFAULT_DRAFT = 3
DEFAULT_DRAFT_ATTN_DP = 1


def default_accept_length(draft: int) -> float:
    if draft <= 0:
        return 1.0
    return 1.0 + MTP_P1 + sum(MTP_P1 * DRAFT_P ** i for i in range(1, draft))


@dataclass(frozen=True)
class PoolLayout:
    workers: int
    tp: int
    ep: int
    dp: int
    attention_dp: bool
    gpus: int
    pp: int = 1


# per-token decode latencies: a decode-phase measurement of them leaves the prompts' prefill out too
STEP_METRICS = ("tpot_ms", "itl_ms", "tpot_p50_ms", "tpot_p90_ms", "tpot_p99_ms")
_NO_SPEC = re.compile(r"spec decoding: none|no speculative|no mtp|without mtp|mtp off|not enabled"
                      r"|(?:mtp|speculative decoding|eagle3?)[^.;]{0,20}not stated", re.I)
_SPEC = re.compile(r"\b(mtp|eagle3?|nextn|speculative)", re.I)
_STEPS = re.compile(r"(?:nextn\s*)?(\d+)\s*steps?(?:\s*/\s*(\d+)\s*draft)?", re.I)
_NEXTN_LAYERS = re.compile(r"(\d+)\s*nextn layers", re.I)
# SGLang --speculative-num-steps N (EAGLE/MTP depth); vLLM --speculative-config {"num_speculative_tokens": N}
_SPEC_FLAG = re.compile(r"--speculative-num-steps[ =](\d+)|num_speculative_tokens\W{0,4}(\d+)", re.I)
# an EAGLE draft tree: --speculative-eagle-topk K > 1 with --speculative-num-draft-tokens D verifies D tokens per step
_TOPK_FLAG = re.compile(r"--speculative-eagle-topk[ =](\d+)", re.I)
_TREE_FLAG = re.compile(r"--speculative-num-draft-tokens[ =](\d+)", re.I)
_ACCEPT = re.compile(r"accept(?:ance)? length\s*(?:of\s*)?(?:~\s*)?([\d.]+)", re.I)
PROMPT_COUNT = re.compile(r"(\d[\d,]*)\s*(?:successful\s+)?(?:prompts|requests)\b", re.I)
OVER_REQUESTS = re.compile(r"over (\d[\d,]*) successful requests", re.I)
_RANGE_RATIO = re.compile(r"range[-_ ]ratio\s*=?\s*([\d.]+)", re.I)
# InferenceX's harness (SemiAnalysisAI/InferenceX .github/workflows/benchmark-tmpl.yml and
# benchmark-multinode-tmpl.yml: RANDOM_RANGE_RATIO 0.8) draws every prompt and output length uniformly from
# [int(0.8 L), L] (utils/bench_serving/benchmark_serving.py, sample_random_requests; --ignore-eos), the
# same rule as sglang.bench_serving's random dataset. Rows that name that dataset without a ratio use it.
INFERENCEX_RANGE_RATIO = 0.8
_INFERENCEX_RANDOM = re.compile(r"inferencex random dataset", re.I)
# The same harness's serving scripts store the KV cache in FP8 for FP8 and FP4 checkpoints (benchmarks/
# single_node/*.sh and multi_node recipes: SGLang --kv-cache-dtype fp8_e4m3, TensorRT-LLM kv_cache_config
# dtype fp8, ATOM/vLLM kv_cache_dtype fp8; a few H100/H200 scripts keep the default). Its dashboard rows do
# not report the KV dtype, so rows from that harness with FP8/FP4 weights take FP8 KV.
INFERENCEX_HARNESS = re.compile(r"inferencex (?:dashboard|random dataset)", re.I)
# Its fixed-sequence-length scripts run --num-prompts $((CONC * 10)) at --max-concurrency $CONC
# (benchmarks/single_node/fixed_seq_len/*.sh), so a run's first wave is a tenth of its requests.
INFERENCEX_PROMPTS_PER_CONCURRENCY = 10


def random_length_ratio(notes: str) -> float | None:
    """The random dataset's range ratio r (lengths uniform in [r L, L]) when the notes give or imply one."""
    m = _RANGE_RATIO.search(notes)
    if m:
        return min(float(m.group(1).rstrip(".")), 1.0)
    if _INFERENCEX_RANDOM.search(notes):
        return INFERENCEX_RANGE_RATIO
    return None


_IX_POOL = re.compile(r"(prefill|decode):? (\d+) worker\(s\) TP(\d+)/EP(\d+)( attnDP)? = (\d+) GPUs", re.I)
# "1 prefill node (pp8) + 1 decode node (ep8)", "prefill 2 nodes tp32 ..., decode 2 nodes tp32 dp8 ep32"
_NODE_POOL = re.compile(r"(?:(\d+) (prefill|decode) nodes?\s*\(([^)]*)\)|(prefill|decode):? (\d+) nodes?([^;,+]*))",
                        re.I)
_DEGREE = re.compile(r"\b(tp|pp|ep|dp)\s*(\d+)", re.I)
_CARDS_POOL = re.compile(r"(prefill|decode)[^;,]*?(?:(\d+)\s*(?:instances\s*)?x\s*)?(\d+) cards\s*\(?tp(\d+) dp(\d+)", re.I)


def draft_tree(notes: str, draft: int) -> int:
    """Tokens verified per step when the notes launch a draft tree (top-k > 1, more draft tokens than the chain's
    draft + 1); 0 for a chain."""
    k, d = _TOPK_FLAG.search(notes), _TREE_FLAG.search(notes)
    if draft and k and d and int(k.group(1)) > 1 and int(d.group(1)) > draft + 1:
        return int(d.group(1))
    return 0


def parse_spec(notes: str, engine: str) -> tuple[int, float, list[str]]:
    """(draft tokens, accept length, what was read) from a row's notes."""
    used: list[str] = []
    if _NO_SPEC.search(notes) or not _SPEC.search(notes):
        return 0, 1.0, used
    draft = 0
    m = _NEXTN_LAYERS.search(notes)
    flag = _SPEC_FLAG.search(notes)
    if m:
        draft = int(m.group(1))
    elif flag:
        draft = int(next(g for g in flag.groups() if g))     # --speculative-num-steps / num_speculative_tokens
    else:
        steps = [int(s.group(1)) for s in _STEPS.finditer(notes)]
        if steps:
            draft = steps[-1]          # decode-side setting is stated last
    acc = _ACCEPT.search(notes)
    if draft == 0:
        draft = DEFAULT_DRAFT if not acc or float(acc.group(1)) > 2.2 else 1
        used.append(f"speculative decoding with {draft} draft tokens (count not stated; assumed)")
    accept = float(acc.group(1)) if acc else default_accept_length(draft)
    if not acc:
        used.append(f"accept length {accept:.2f} (published MTP acceptance, not stated by the source)")
    return draft, accept, used


def parse_pools(notes: str, chip_units: int = 1, total_gpus: int = 0) -> tuple[PoolLayout | None, PoolLayout | None]:
    """Prefill and decode pools of a disaggregated run, from the notes' layout text."""
    pools: dict[str, PoolLayout] = {}
    for m in _IX_POOL.finditer(notes):
        role, workers, tp, ep, adp, gpus = m.groups()
        tp_i, ep_i = int(tp), int(ep)
        adp = adp or ep_i > tp_i        # experts over more GPUs than the attention TP group: attention is DP
        per_worker = max(int(gpus) // max(int(workers), 1), 1)
        if adp:
            # attention data parallel spans the worker, one attention rank per GPU (SGLang's --tp N --dp N
            # --enable-dp-attention); the stated TP is either that N or the per-rank attention TP of 1
            tp_i = per_worker
        elif tp_i < per_worker:
            tp_i = per_worker           # a worker spans its GPUs: "TP1" on a 4-GPU worker is a per-rank figure
        pools.setdefault(role.lower(), PoolLayout(int(workers), tp_i, ep_i, tp_i if adp else 1, bool(adp),
                                                  int(gpus)))
    if not pools:
        for m in _CARDS_POOL.finditer(notes):
            role, inst, cards, tp, dp = m.groups()
            n = int(inst or 1)
            pools.setdefault(role.lower(), PoolLayout(n, int(tp), int(tp), int(dp), int(dp) > 1,
                                                      n * int(cards) * chip_units))
    if not pools and total_gpus:
        pools = _node_pools(notes, total_gpus * chip_units)
    return pools.get("prefill"), pools.get("decode")


def _node_pools(notes: str, devices: int) -> dict[str, PoolLayout]:
    """Pools given in nodes ("1 prefill node (pp8) + 1 decode node (ep8)"): each role is one instance over its
    nodes; a node holds the row's devices divided by all the nodes named."""
    found: dict[str, tuple[int, dict[str, int]]] = {}
    for m in _NODE_POOL.finditer(notes):
        n, role, text = (m.group(1), m.group(2), m.group(3)) if m.group(2) else (m.group(5), m.group(4), m.group(6))
        deg = {k.lower(): int(v) for k, v in _DEGREE.findall(text or "")}
        found.setdefault(role.lower(), (int(n), deg))
    if set(found) != {"prefill", "decode"}:
        return {}
    per_node = devices // sum(n for n, _ in found.values())
    pools: dict[str, PoolLayout] = {}
    for role, (n, deg) in found.items():
        gpus = max(n * per_node, 1)
        pp = deg.get("pp", 1)
        tp = deg.get("tp", max(gpus // pp, 1))
        dp = deg.get("dp", 1)
        pools[role] = PoolLayout(1, tp, deg.get("ep", 1), dp, dp > 1, gpus, pp)
    return pools


_VERSION = {"vllm": re.compile(r"vllm[^0-9;,]{0,20}?(v\d+\.\d+(?:\.\d+)?|\d+\.\d+\.\d+)", re.I),
            "sglang": re.compile(r"sglang[^0-9;,]{0,12}?(v\d+\.\d+(?:\.\d+)?|\d+\.\d+\.\d+)", re.I),
            "trtllm": re.compile(r"(?:tensorrt-llm|trt-llm)[^0-9;,]{0,12}?(v\d+\.\d+(?:\.\d+)?|\d+\.\d+\.\d+)", re.I)}


# Engine flags as notes write them: a launch flag (`--max-num-seqs 256`, `--max-num-seqs=256`), a config key
# (`max_num_seqs: 256`) or a benchmark table's column (`max-num-seqs 256`); the first mention counts.
def _flag(names: str, value: str = r"(\d+)") -> re.Pattern[str]:
    return re.compile(r"(?<![\w-])(?:--)?(?:" + names + r")\s*[=:]?\s*" + value, re.I)


_FLAG = {"budget": _flag(r"max[-_]num[-_]batched[-_]tokens|chunked[-_]prefill[-_]size|max[-_]num[-_]tokens"),
         "max_seqs": _flag(r"max[-_]num[-_]seqs|max[-_]running[-_]requests"),
         "mem_util": _flag(r"gpu[-_]memory[-_]utilization|mem[-_]fraction[-_]static|mem[-_]frac", r"([0-9]*\.[0-9]+)"),
         "chunked": _flag(r"enable[-_]chunked[-_]prefill", r"(true|false|on|off)\b"),
         "multi_step": _flag(r"num[-_]scheduler[-_]steps?"),
         "graph_max": _flag(r"cuda[-_]graph[-_]max[-_]bs|max[-_]cudagraph[-_]capture[-_]size"),
         "recv_interval": _flag(r"scheduler[-_]recv[-_]interval"),
         "stream_interval": _flag(r"stream[-_]interval")}
# 4-bit weights with FP8 activations (SGLang's W4AFP8 MoE kernels): the GEMMs run on the FP8 tensor cores, the
# weights widened in registers. W4A8 with INT8 activations (Ascend) stays on the dequantizing path it was fitted on:
# read as INT8 GEMMs, the SGLang Ascend rows split by configuration (aggregated +59 %, PD -7 %, refitted or not)
W4AFP8 = re.compile(r"W4A?FP8|W4A8[-_ ]?FP8|FP8 activations", re.I)
# SGLang's precision of a linear-attention layer's recurrent state (its default: float32)
_SSM_DTYPE = re.compile(r"--mamba[-_]ssm[-_]dtype[= ]+(bfloat16|float16|float32|bf16|fp16|fp32)", re.I)
# graphs off: every step launches its kernels from the host (vLLM --enforce-eager, SGLang --disable-cuda-graph)
_NO_GRAPHS = re.compile(r"--enforce[-_]eager|--disable[-_]cuda[-_]graph(?![-_])|\bno (?:CUDA|HIP) graphs", re.I)
# vLLM's --compilation-config '{"cudagraph_mode": "..."}': FULL* replays decode steps as whole graphs, PIECEWISE
# launches attention from the host per layer in every step, NONE captures nothing
_GRAPH_MODE = re.compile(r"cudagraph[-_]mode\W{0,6}(FULL_DECODE_ONLY|FULL_AND_PIECEWISE|FULL|PIECEWISE|NONE)\b", re.I)


_DYNAMO_IMAGE = re.compile(r"ai-dynamo/(tensorrtllm|vllm|sglang)-runtime:v?([0-9][\w.\-]*)", re.I)
_IMAGE_ENGINE = {"tensorrtllm": "trtllm", "vllm": "vllm", "sglang": "sglang"}


@cache
def _dynamo_images() -> dict[str, dict[str, str]]:
    """Engine release shipped by each Dynamo runtime image tag (data/engines/dynamo_images.yaml)."""
    return yaml.safe_load((resources.files("stockpile") / "data" / "engines" / "dynamo_images.yaml").read_text())


def _dynamo_release(case: "InferenceCase", notes: str, version: str | None) -> str | None:
    """The engine version, unless it is the tag of the NVIDIA Dynamo runtime image the notes name: that tag is
    Dynamo's release, so it maps to the engine release the image ships (data/engines/dynamo_images.yaml) or,
    not listed, to no version (the current release family) rather than an old engine release of that number."""
    m = _DYNAMO_IMAGE.search(notes)
    if version is None or m is None or _IMAGE_ENGINE[m.group(1).lower()] != case.engine:
        return version
    tag = m.group(2)
    if not tag.startswith(version.lstrip("v")):
        return version                          # the notes give the engine's own version beside the image
    mapped = (_dynamo_images().get(m.group(1).lower()) or {}).get(tag)
    case.notes_used.append(f"engine version: {tag} is the Dynamo image's release; "
                           + (f"it ships {case.engine} {mapped}" if mapped else
                              f"{case.engine} version not known, read as the current release"))
    return str(mapped) if mapped else None


def scheduler_notes(case: "InferenceCase", row: dict[str, str], notes: str) -> None:
    """What the notes say about the statistic and the engine's scheduler (version, chunked prefill, budget)."""
    if re.search(r"statistic:\s*median\s+(?:ITL|inter-token)", notes, re.I):
        case.statistic = "median_itl"           # the median over every token gap, not over requests
    elif re.search(r"statistic:\s*median", notes, re.I):
        case.statistic = "median"
    version = (row.get("engine_version") or "").strip() or None
    if version is None and case.engine in _VERSION:
        m = _VERSION[case.engine].search(notes)
        version = m.group(1) if m else None
    case.engine_version = _dynamo_release(case, notes, version)
    m = _FLAG["chunked"].search(notes)
    if m:
        case.chunked_prefill = m.group(1).lower() in ("true", "on", "1")
    elif re.search(r"enable[-_]mixed[-_]chunk", notes, re.I):
        case.chunked_prefill = True             # SGLang mixing prompt chunks into decode batches
    elif re.search(r"chunked prefill off|chunked prefill disabled", notes, re.I):
        case.chunked_prefill = False
    elif re.search(r"chunked prefill on", notes, re.I):
        case.chunked_prefill = True
    if re.search(r"\bV0 engine\b|num[-_]scheduler[-_]steps?\b", notes):
        case.v0_engine = True                       # multi-step scheduling existed only in V0
        if re.search(r"\bV0 engine\b", notes) and case.chunked_prefill is None:
            case.chunked_prefill = False
    m = _FLAG["multi_step"].search(notes)
    if m and int(m.group(1)) >= 1:
        case.multi_step = int(m.group(1))
    if re.search(r"uniformly between 1 and|range ratio of zero", notes, re.I):
        case.fixed_lengths = False          # measured means already: only the spread is set
        case.length_spread = 2.0
    _prefix_notes(case, notes)
    m = _FLAG["budget"].search(notes)
    if m and int(m.group(1)) > 0:
        case.budget = int(m.group(1))
    m = _FLAG["max_seqs"].search(notes)
    if m and int(m.group(1)) > 0:
        case.max_seqs = int(m.group(1))
    for key in ("recv_interval", "stream_interval"):
        m = _FLAG[key].search(notes)
        if m and int(m.group(1)) > 1 and case.engine == "sglang":
            setattr(case, key, int(m.group(1)))
    m = _SSM_DTYPE.search(notes)
    if m and case.engine == "sglang":
        case.ssm_dtype = normalise_dtype(m.group(1))
    m = _FLAG["mem_util"].search(notes)
    if m:
        v = float(m.group(1))
        if 0.1 <= v <= 1.0:
            case.mem_util = v
    m = _FLAG["graph_max"].search(notes)
    found = _GRAPH_MODE.search(notes)
    mode = found.group(1).upper() if found else ""
    eager = bool(_NO_GRAPHS.search(notes)) or mode == "NONE"
    if mode.startswith("FULL") and not eager:
        case.full_graphs = True
        case.notes_used.append(f"cudagraph_mode {mode}: decode steps replayed as whole graphs")
    if eager or mode == "PIECEWISE":
        case.graph_max = 0
        case.notes_used.append("no CUDA graphs (eager mode): every step launches its kernels from the host" if eager
                               else "cudagraph_mode PIECEWISE: attention launched from the host per layer in every step")
    elif m:
        case.graph_max = int(m.group(1))
        case.notes_used.append(f"CUDA graphs for decode steps up to {case.graph_max} (the engine's capture unit)")
    if case.multi_step > 1:
        case.notes_used.append(f"multi-step scheduling: {case.multi_step} decode steps per scheduling round")
    if any(x is not None for x in (case.budget, case.max_seqs, case.mem_util)):
        case.notes_used.append("engine limits from the notes: " + ", ".join(
            f"{k} {v:g}" for k, v in (("token budget", case.budget), ("max sequences", case.max_seqs),
                                      ("memory fraction", case.mem_util)) if v is not None))


_PREFIX_LEN = [re.compile(p, re.I) for p in (
    r"--random-prefix-len[ =](\d+)",                     # vLLM bench, random dataset: one prefix for all
    r"--prefix-repetition-prefix-len[ =](\d+)",          # vLLM bench, prefix_repetition dataset
    r"--gsp-system-prompt-len[ =](\d+)",                 # sglang.bench_serving generated-shared-prefix
    r"--shared-prefix-len\w*[ =](\d+)",
    r"(\d+)[- ]token (?:shared |common )?(?:system )?prefix",
    r"shared (?:system )?prefix (?:of |length |len(?:gth)? ?[=:]? ?)?(\d+)",
    r"prefix[_ ]len(?:gth)?\s*[=:]?\s*(\d+)")]
_PREFIX_GROUPS = [re.compile(p, re.I) for p in (
    r"--prefix-repetition-num-prefixes[ =](\d+)", r"--gsp-num-groups[ =](\d+)", r"(\d+) (?:distinct |shared )?prefix(?:es| groups)")]
_NO_PREFIX_CACHE = re.compile(r"--disable-radix-cache|--no-enable-prefix-caching|prefix caching (?:false|off|disabled)"
                              r"|enable-prefix-caching false|radix cache (?:off|disabled)", re.I)


def _prefix_notes(case: "InferenceCase", notes: str) -> None:
    """A shared-prefix workload (its prefix length and groups) and whether the prefix cache is on."""
    for rx in _PREFIX_LEN:
        m = rx.search(notes)
        if m:
            case.prefix_len = min(float(m.group(1)), max(case.isl - 1.0, 0.0))
            break
    for rx in _PREFIX_GROUPS:
        m = rx.search(notes)
        if m:
            case.prefix_groups = max(float(m.group(1)), 1.0)
            break
    if _NO_PREFIX_CACHE.search(notes):
        case.prefix_cache = False
    m = re.search(r"--burstiness[ =]([0-9.]+)", notes)
    if m and float(m.group(1)) > 0:
        case.burstiness = float(m.group(1))
    if case.prefix_len and case.prefix_cache:
        case.notes_used.append(f"shared prefix of {case.prefix_len:.0f} tokens ({case.prefix_groups:.0f} "
                               "group(s)) served from the prefix cache after each group's first request")


def prefix_hit_share(case: "InferenceCase") -> float:
    """Mean share of a request's prompt found in the prefix cache."""
    if not case.prefix_len or not case.prefix_cache or case.isl <= 0:
        return 0.0
    n = case.num_requests or 1000.0
    return case.prefix_len / case.isl * max(1.0 - case.prefix_groups / n, 0.0)
