"""The serving settings behind a row measured by InferenceX's harness, read from the script the run called.

InferenceX's dashboard (and the part of aiconfigurator's silicon data that reproduces it) reports latencies and
throughput but not the flags the server ran with. Those are in the benchmark script the launcher picks by model,
precision, chip, framework and speculative decoding (SemiAnalysisAI/InferenceX runners/launch_*.sh:
benchmarks/single_node/{model}_{precision}_{chip}[_{framework}][_mtp].sh), as it stood on the run's date.
data/engines/inferencex_scripts.yaml holds those settings through the scripts' history (bench/inferencex_scripts.py
writes it from the repository). A row that names the harness, a date and an aggregated single-node layout takes, where
the row and its notes do not state them, SGLang's request polling and output flushing of the script(s) of its engine
at that date (APPLIED; chosen per run by the script's own logic, evaluated for the row's concurrency, TP, attention
data parallelism and prompt length). The KV-cache precision, memory fraction, sequence cap, prefill budget and
CUDA-graph settings are read too and applied only when asked (fields=FIELDS).
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

# model id (lower case, without organisation) -> the scripts' model code (runners/launch_*.sh: EXP_NAME's prefix)
_MODEL_CODES = (
    (re.compile(r"^deepseek-r1"), "dsr1"), (re.compile(r"^deepseek-v4"), "dsv4"),
    (re.compile(r"^gpt-oss-120b"), "gptoss"), (re.compile(r"^minimax-m2\.5"), "minimaxm2.5"),
    (re.compile(r"^minimax-m3"), "minimaxm3"), (re.compile(r"^qwen3\.5-397b"), "qwen3.5"),
    (re.compile(r"^glm-5\.1"), "glm5.1"), (re.compile(r"^glm-5(?![.\d])"), "glm5"),
    (re.compile(r"^kimi-k2\.5"), "kimik2.5"), (re.compile(r"^(?:meta-)?llama-3\.[13]-70b"), "70b"),
)
_FRAMEWORK = {"vllm": ("", "_vllm"), "sglang": ("", "_sglang"), "trtllm": ("_trt",)}
_DATE = re.compile(r"(?:measured|run date) (\d{4}-\d{2}-\d{2})")
FIELDS = ("kv_dtype", "mem_util", "max_seqs", "budget", "graph_max", "graph_mode", "recv_interval", "stream_interval",
          "ssm_dtype")
# what a row takes from its script by default: SGLang's request polling, output flushing and recurrent-state
# precision (--mamba-ssm-dtype). The KV precision,
# memory fraction, sequence cap, prefill budget and CUDA-graph settings are read too, but a fit with them was
# worse on every file (docs/validation.md, fortieth session): they stay for bench/ comparisons (fields=FIELDS)
APPLIED = ("recv_interval", "stream_interval", "ssm_dtype")


@dataclass(frozen=True)
class ScriptSettings:
    """What the script(s) of a run stated, and where that was read."""
    values: dict[str, Any]
    source: str                 # script names with commit and date


@cache
def _dated(name: str) -> dict[str, tuple[list[str], list[dict[str, Any]]]]:
    """A data/engines file of per-script entries, each holding from its `since` date: script -> (dates, entries)."""
    raw = yaml.safe_load((resources.files("stockpile") / "data" / "engines" / name).read_text())
    return {k: ([str(v["since"]) for v in vs], vs) for k, vs in raw.items()}


def _in_force(name: str, key: str, date: str) -> dict[str, Any] | None:
    """The entry of script `key` in data/engines/`name` in force on `date` (ISO), or None."""
    if key not in _dated(name):
        return None
    dates, entries = _dated(name)[key]
    i = bisect.bisect_right(dates, date) - 1
    return entries[i] if i >= 0 else None


def _aggregated_run_date(notes: str) -> str | None:
    """The run date of an aggregated (not disaggregated) InferenceX row, or None."""
    date = run_date(notes)
    return None if date is None or (_DISAGG.search(notes) and not _AGG.search(notes)) else date


def model_code(model: str) -> str | None:
    name = model.rsplit("/", 1)[-1].lower()
    return next((code for pat, code in _MODEL_CODES if pat.search(name)), None)


def run_date(notes: str) -> str | None:
    m = _DATE.search(notes)
    return m.group(1) if m else None


def script_settings(model: str, weight_dtype: str | None, chip: str, engine: str, spec: bool,
                    date: str) -> ScriptSettings | None:
    """The settings of the script(s) of `engine` for this model, precision, chip and speculative decoding as they
    stood on `date` (ISO), or None when no such script existed then. Where two scripts of the engine match (a
    framework named or not), only the settings they agree on are kept."""
    code = model_code(model)
    if code is None or not weight_dtype or engine not in _FRAMEWORK:
        return None
    base = f"{code}_{weight_dtype}_{chip.split('-', 1)[0].lower()}"
    found = []
    for suffix in _FRAMEWORK[engine]:
        key = base + suffix + ("_mtp" if spec else "")
        entry = _in_force("inferencex_scripts.yaml", key, date)
        if entry is not None and entry.get("engine") == engine:
            found.append((key, entry))
    if not found:
        return None
    first = found[0][1]
    values = {k: first[k] for k in FIELDS if k in first and all(v.get(k) == first[k] for _, v in found)}
    source = ", ".join(f"{key}.sh at {v['commit'][:8]} ({v['since']})" for key, v in found)
    return ScriptSettings(values, source)


_DISAGG = re.compile(r"disaggregat|prefill nodes?\b.*decode nodes?\b", re.I)
_AGG = re.compile(r"no disagg|aggregated \(no", re.I)


def run_value(rule: Any, tp: int, dp_attention: bool, isl: float, conc: float) -> int | None:
    """A per-run setting for one run: `rule` is an int, or {case: [[from_concurrency, value], ...]} with cases
    named tp{N}[_dp][_8k] ("" for every case) as bench/inferencex_scripts.py writes them."""
    if isinstance(rule, int):
        return rule
    if not isinstance(rule, dict):
        return None
    steps = rule.get("") or rule.get(f"tp{tp}{'_dp' if dp_attention else ''}{'_8k' if isl >= 4096 else ''}")
    if not steps:
        return None
    found = [v for c, v in steps if c <= max(conc, 1.0)]
    return int(found[-1]) if found else None


def apply_script_settings(case: Any, notes: str, fields: tuple[str, ...] = APPLIED) -> bool:
    """Give an aggregated InferenceX row (rows.InferenceCase) the settings of the script it ran, where the row does
    not state them; the notes, read after this, still override. True when a script was found."""
    date = _aggregated_run_date(notes)
    if date is None:
        return False
    found = script_settings(case.model, case.weight_dtype, case.chip, case.engine, case.spec_draft > 0, date)
    if found is None or not found.values:
        return False
    v, said = {k: x for k, x in found.values.items() if k in fields}, []
    for key, label in (("recv_interval", "polls for requests every"), ("stream_interval", "flushes output every")):
        if key in v and case.engine == "sglang" and case.concurrency:
            n = run_value(v[key], case.tp or 1, (case.dp or 1) > 1, case.isl, case.concurrency)
            if n is not None and n > 1 and getattr(case, key) is None:
                setattr(case, key, n)
                said.append(f"{label} {n} decode steps")
    if "ssm_dtype" in v and case.engine == "sglang" and case.ssm_dtype is None:
        case.ssm_dtype = str(v["ssm_dtype"])
        said.append(f"recurrent state {case.ssm_dtype}")
    if case.kv_dtype is None and "kv_dtype" in v:
        case.kv_dtype = v["kv_dtype"]
        said.append(f"KV {v['kv_dtype']}")
    for key, label in (("mem_util", "memory fraction"), ("max_seqs", "max sequences"), ("budget", "token budget")):
        if getattr(case, key) is None and key in v:
            setattr(case, key, v[key])
            said.append(f"{label} {v[key]:g}")
    mode = str(v.get("graph_mode", ""))
    if mode in ("PIECEWISE", "NONE"):
        case.graph_max = 0
        said.append("no CUDA graphs" if mode == "NONE" else "cudagraph_mode PIECEWISE")
    elif mode.startswith("FULL"):
        case.full_graphs = True
        said.append(f"cudagraph_mode {mode}")
    if case.graph_max is None and "graph_max" in v:
        case.graph_max = int(v["graph_max"])
        said.append(f"CUDA graphs up to {v['graph_max']}")
    if said:
        case.notes_used.append(f"InferenceX script {found.source}: " + ", ".join(said))
    return bool(said)


def _applies(when: dict[str, Any] | None, case: Any) -> bool:
    """Whether a script's case condition (data/engines/trtllm_context_hold.yaml `when`) holds for this row."""
    w = when or {}
    conc = case.concurrency or 0.0
    return ((w.get("isl") is None or round(case.isl) == w["isl"]) and (w.get("osl") is None or round(case.osl) == w["osl"])
            and (w.get("tp_below") is None or (case.tp or 1) < w["tp_below"])
            and (w.get("conc_from") is None or conc >= w["conc_from"]))


def script_budget(rule: Any, floor: Any, case: Any) -> int | None:
    """A TensorRT-LLM script's --max_num_tokens for this run: a number, or conc+isl for
    (CONC + ISL + 64 + 63) / 64 * 64 in the shell's integer arithmetic, at least `floor` where given."""
    if isinstance(rule, int):
        n = rule
    elif rule == "conc+isl" and case.concurrency:
        n = (int(case.concurrency) + round(case.isl) + 64 + 63) // 64 * 64
    else:
        return None
    return max(n, int(floor)) if floor else n


def apply_batch_wait(case: Any, notes: str) -> bool:
    """Give an aggregated InferenceX row measured with TensorRT-LLM its script's batch waiting
    (data/engines/trtllm_context_hold.yaml) where the script sets it for the row's case: (timeout iterations,
    max_tokens_ratio x the script's --max_num_tokens). Call with the nominal lengths (before a random range
    scales them). True when applied. The file's token budgets and attention-DP balance are recorded, not applied
    (docs/validation.md, forty-fourth session)."""
    date = _aggregated_run_date(notes)
    if case.engine != "trtllm" or case.batch_wait is not None or date is None:
        return False
    code = model_code(case.model)
    if code is None or not case.weight_dtype or case.spec_draft > 0:
        return False
    key = f"{code}_{case.weight_dtype}_{case.chip.split('-', 1)[0].lower()}_trt"
    e = _in_force("trtllm_context_hold.yaml", key, date) or {}
    bw = e.get("batch_wait")
    budget = script_budget(e.get("max_num_tokens"), e.get("min"), case)
    if not bw or budget is None or not _applies(bw.get("when"), case):
        return False
    case.batch_wait = (int(bw["timeout_iters"]), float(bw["max_tokens_ratio"]) * budget)
    case.notes_used.append(f"InferenceX script {key}.sh ({e['since']}, {e['source']}): TensorRT-LLM batch waiting, "
                           f"a prompt held up to {bw['timeout_iters']} iterations or until "
                           f"{case.batch_wait[1]:.0f} tokens ({bw['max_tokens_ratio']:g} of --max_num_tokens {budget})")
    return True
