"""Read the serving settings of InferenceX's single-node benchmark scripts, through their history, into
stockpile/data/engines/inferencex_scripts.yaml.

    git clone https://github.com/SemiAnalysisAI/InferenceX /tmp/InferenceX
    .venv/bin/python bench/inferencex_scripts.py /tmp/InferenceX

InferenceX (and the part of aiconfigurator's silicon data that reproduces its dashboard) publishes latencies and
throughput, not the flags its servers ran with. Those flags sit in the script each run calls,
benchmarks/[single_node/[fixed_seq_len/]]{model}_{precision}_{chip}[_{framework}][_mtp].sh (runners/launch_*.sh), and
they change over time: the KV-cache precision, the memory fraction, the sequence cap, the prefill budget and the
largest CUDA-graph batch decide how many requests run at once and so the queueing behind TTFT.

For every commit that touches benchmarks/, the scripts present at that commit are read; a script's settings are
recorded each time they change, with the commit and its date. `_docker` and `_slurm` variants of one script (the
two launchers of 2025) are merged, a setting on which they disagree left out. Only literal values are kept: a flag
whose value is a shell variable is resolved when the script assigns that variable exactly one value, and left
out otherwise (a value chosen per concurrency or layout), except SGLang's --scheduler-recv-interval and
--stream-interval, which the scripts often choose per run: bash evaluates the lines that set them for each case
(run_rule). A vLLM or SGLang script without --kv-cache-dtype runs
the engine's default (the model's dtype: `bf16`); a TensorRT-LLM script without a kv_cache_config dtype follows
its checkpoint and is left out.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from stockpile.catalog.dtypes import normalise_dtype

REPO_URL = "https://github.com/SemiAnalysisAI/InferenceX"
OUT = Path(__file__).resolve().parents[1] / "stockpile" / "data" / "engines" / "inferencex_scripts.yaml"
# directories whose scripts the single-node launchers call (runners/launch_*.sh over the repository's history)
_DIRS = ("benchmarks/", "benchmarks/single_node/", "benchmarks/single_node/fixed_seq_len/")
_VARIANT = re.compile(r"_(docker|slurm)$")
_ASSIGN = re.compile(r"^\s*(?:export\s+)?([A-Z_][A-Z0-9_]*)=(\"[^\"]*\"|'[^']*'|[^\s;#]*)", re.M)
_DEFAULT = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*:-([^}]*)\}$")
_REF = re.compile(r"\"?\$\{?([A-Z_][A-Z0-9_]*)\}?\"?")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def script_key(path: str) -> str | None:
    """The script's name without its directory and launcher variant ('dsr1_fp4_b200_docker.sh' -> 'dsr1_fp4_b200'),
    or None for what is not a single-node serving script."""
    if not path.endswith(".sh") or not any(path.startswith(d) and "/" not in path[len(d):] for d in _DIRS):
        return None
    name = path.rsplit("/", 1)[-1][:-3]
    if name.startswith("benchmark_lib") or "_" not in name:
        return None
    return _VARIANT.sub("", name)


def _resolve(text: str) -> str:
    """The script with each variable that is assigned exactly one literal value replaced by it."""
    values: dict[str, set[str]] = {}
    for name, raw in _ASSIGN.findall(text):
        v = raw.strip("\"'")
        d = _DEFAULT.match(v)
        values.setdefault(name, set()).add(d.group(1) if d else v)
    one = {k: next(iter(v)) for k, v in values.items() if len(v) == 1 and "$" not in next(iter(v))}
    return _REF.sub(lambda m: one.get(m.group(1), m.group(0)), text)


def _value(text: str, pattern: str) -> str | None:
    """The one literal value of a flag across the script (None if absent, variable or given twice differently)."""
    found = {m.group(1).strip("\"'") for m in re.finditer(pattern, text)}
    if len(found) != 1:
        return None
    v = next(iter(found))
    return None if "$" in v else v


def engine_of(text: str) -> str | None:
    if re.search(r"sglang\.launch_server|sglang serve", text):
        return "sglang"
    if re.search(r"trtllm-serve", text):
        return "trtllm"
    if re.search(r"\bvllm serve\b|vllm\.entrypoints", text):
        return "vllm"
    if re.search(r"\batom\b", text, re.I):
        return "atom"
    return None


def settings(text: str) -> dict[str, Any]:
    """The serving settings a script states (see the module's docstring for what is kept)."""
    raw = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    body = _resolve(raw)
    engine = engine_of(body)
    out: dict[str, Any] = {"engine": engine}
    if engine is None:
        return out
    kv = _value(body, r"(?m)(?:--|^\s*)kv[-_]cache[-_]dtype(?:[= ]+|:[ \t]*)(\"?[\w.]+\"?)")
    if kv is None and engine == "trtllm":
        m = re.search(r"kv_cache_config:\s*\n((?:[ \t]+\S.*\n?)+)", body)
        kv = _value(m.group(1), r"\bdtype:\s*(\S+)") if m else None
    if kv is None and engine in ("vllm", "sglang") and not re.search(r"kv[-_]cache[-_]dtype", body):
        kv = "auto"
    if kv is not None:
        kv = kv.lower()
        out["kv_dtype"] = "fp8" if kv.startswith("fp8") else ("bf16" if kv in ("auto", "bfloat16", "bf16") else kv)
    flags = {
        "mem_util": r"(?:--gpu[-_]memory[-_]utilization|--mem[-_]fraction[-_]static|free_gpu_memory_fraction:?)"
                    r"[= ]+([0-9.]+)",
        "max_seqs": r"(?:--max[-_]num[-_]seqs|--max[-_]running[-_]requests|--max_batch_size)[= ]+(\"?\$?\w+\"?)",
        "budget": r"(?:--max[-_]num[-_]batched[-_]tokens|--chunked[-_]prefill[-_]size|--max_num_tokens)[= ]+"
                  r"(\"?\$?\w+\"?)",
        "graph_max": r"(?:--cuda[-_]graph[-_]max[-_]bs|--max[-_]cudagraph[-_]capture[-_]size)[= ]+(\"?\$?\w+\"?)",
    }
    for key, pat in flags.items():
        v = _value(body, pat)
        if v is not None:
            try:
                out[key] = float(v) if key == "mem_util" else int(v)
            except ValueError:
                pass
    if engine == "trtllm":      # cuda_graph_config: max_batch_size under the extra options
        m = re.search(r"cuda_graph_config:\s*\n((?:[ \t]+\S.*\n?)+)", body)
        v = _value(m.group(1), r"max_batch_size:\s*(\S+)") if m else None
        if v is not None and v.isdigit():
            out["graph_max"] = int(v)
    if engine == "sglang":
        ssm = _value(body, r"--mamba[-_]ssm[-_]dtype[= ]+(\"?[\w.]+\"?)")
        if ssm is not None:
            out["ssm_dtype"] = normalise_dtype(ssm)
        for key, flag in _RUN_FLAGS.items():
            rule = run_rule(raw, flag)
            if rule is not None:
                out[key] = rule
    mode = re.search(r"cudagraph[-_]mode\W{0,6}(FULL_DECODE_ONLY|FULL_AND_PIECEWISE|FULL|PIECEWISE|NONE)\b", body)
    if mode:
        out["graph_mode"] = mode.group(1)
    if re.search(r"--enforce[-_]eager|--disable[-_]cuda[-_]graph(?![-_])", body):
        out["graph_mode"] = "NONE"
    return out


# SGLang's --scheduler-recv-interval and --stream-interval are often chosen per run in the script (by concurrency,
# by data-parallel attention, by prompt length): the script's own shell logic decides, evaluated by bash on the
# lines that set them for each case below. The value is kept as [[from_concurrency, value], ...] per case.
_RUN_FLAGS = {"recv_interval": "scheduler-recv-interval", "stream_interval": "stream-interval"}
_CONCS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
# the cases a script's logic may tell apart: tensor-parallel size, data-parallel attention, 8k prompts
_CASES = {f"tp{tp}{'_dp' if dp == 'true' else ''}{'_8k' if isl == '8192' else ''}": (tp, dp, isl)
          for tp in ("1", "2", "4", "8") for dp in ("false", "true") for isl in ("1024", "8192")}
_CONTROL = re.compile(r"^\s*((?:el)?if\s.*;\s*then|else|fi)\s*$")


def _flag_expr(body: str, flag: str) -> str | None:
    """The shell expression given to `--flag` (None when absent or given two ways)."""
    found = {m.group(1) for m in re.finditer(r"--" + flag + r"[= ]+(\$\(.*?\)|\"[^\"]*\"|\S+)", body)}
    return next(iter(found)) if len(found) == 1 else None


def run_rule(body: str, flag: str) -> Any:
    """What a per-run flag evaluates to: an int where every run agrees, else {case: [[from_conc, value], ...]} over
    the cases of _CASES the script runs (None where the flag is absent or bash cannot follow the script)."""
    expr = _flag_expr(body, flag)
    if expr is None:
        return None
    names = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", expr)) - {"CONC", "DP_ATTENTION", "ISL", "TP"}
    lines = []
    for line in body.splitlines():
        if _CONTROL.match(line):
            lines.append(line.strip())
            if line.strip().endswith("then") or line.strip() == "else":
                lines.append(":")
        elif any(re.match(r"\s*(?:export\s+)?" + n + r"=", line) for n in names):
            lines.append(line.strip())
    program = ("for CONC in " + " ".join(map(str, _CONCS)) + "; do (\n" + "\n".join(lines) +
               "\necho " + expr + "\n); done\n")
    out: dict[str, list[list[int]]] = {}
    bash = shutil.which("bash") or "/bin/bash"
    for case, (tp, dp, isl) in _CASES.items():
        # a restricted shell with no command on its PATH: the fragment can run bash's builtins and nothing else
        env = {"PATH": "/nonexistent", "TP": tp, "EP_SIZE": "1", "DP_ATTENTION": dp, "ISL": isl, "OSL": "1024"}
        r = subprocess.run([bash, "-r", "-c", program], env=env, capture_output=True, text=True)
        values = [v.strip("\"'") for v in r.stdout.split()]
        if r.returncode != 0:
            return None
        if len(values) != len(_CONCS) or not all(v.isdigit() for v in values):
            continue            # a layout the script does not run (it exits), or a value bash cannot tell
        steps: list[list[int]] = []
        for conc, v in zip(_CONCS, values):
            if not steps or steps[-1][1] != int(v):
                steps.append([conc, int(v)])
        out[case] = steps
    if not out:
        return None
    first = next(iter(out.values()))
    if len(out) == len(_CASES) and all(v == first for v in out.values()):
        return first[0][1] if len(first) == 1 else {"": first}
    return out


def _merge(variants: list[dict[str, Any]]) -> dict[str, Any]:
    """The settings the launcher variants of one script agree on."""
    keys = set().union(*variants)
    return {k: variants[0].get(k) for k in sorted(keys)
            if all(v.get(k) == variants[0].get(k) for v in variants) and variants[0].get(k) is not None}


def history(repo: Path) -> dict[str, list[dict[str, Any]]]:
    """Each script's settings each time they changed: {key: [{since, commit, path, ...settings}]}."""
    log = _git(repo, "log", "--reverse", "--format=%H %cI", "--", "benchmarks").split("\n")
    blobs: dict[str, dict[str, Any]] = {}     # blob id -> settings (a blob is parsed once)
    out: dict[str, list[dict[str, Any]]] = {}
    for n, line in enumerate(x for x in log if x.strip()):
        commit, date = line.split()
        tree = _git(repo, "ls-tree", "-r", commit, "benchmarks")
        by_key: dict[str, list[tuple[str, str]]] = {}
        for row in tree.splitlines():
            meta, path = row.split("\t", 1)
            key = script_key(path)
            if key:
                by_key.setdefault(key, []).append((meta.split()[2], path))
        for key, files in by_key.items():
            variants = []
            for blob, _ in files:
                if blob not in blobs:
                    blobs[blob] = settings(_git(repo, "cat-file", "-p", blob))
                variants.append(blobs[blob])
            merged = _merge(variants)
            if merged.get("engine") in (None, "atom"):
                continue
            last = out.get(key, [{}])[-1]
            if {k: v for k, v in last.items() if k not in ("since", "commit", "path")} != merged:
                out.setdefault(key, []).append({"since": date[:10], "commit": commit,
                                                "path": sorted(p for _, p in files)[0], **merged})
        if n % 200 == 0:
            print(f"{n} commits read", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("repo", type=Path, help="a local clone of SemiAnalysisAI/InferenceX with its history")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    hist = history(args.repo)
    head = _git(args.repo, "log", "-1", "--format=%H %cI").split()
    text = ("# Serving settings of InferenceX's single-node benchmark scripts through their history (written by\n"
            "# bench/inferencex_scripts.py from " + REPO_URL + " at " + head[0][:12] + ", " + head[1][:10] + ").\n"
            "# Each entry holds from `since` (the commit's date) until the script's next entry; the source of an\n"
            "# entry is " + REPO_URL + "/blob/COMMIT/PATH. kv_dtype bf16: no --kv-cache-dtype (the engine's\n"
            "# default, the model's dtype); mem_util: --gpu-memory-utilization, --mem-fraction-static or\n"
            "# TensorRT-LLM's free_gpu_memory_fraction; max_seqs: --max-num-seqs, --max-running-requests or\n"
            "# --max_batch_size; budget: --max-num-batched-tokens, --chunked-prefill-size or --max_num_tokens;\n"
            "# graph_max: the largest batch captured in a CUDA graph. A setting chosen per run (a shell variable\n"
            "# with several values) is left out, except SGLang's recv_interval (--scheduler-recv-interval) and\n"
            "# stream_interval (--stream-interval): an int, or {case: [[from_concurrency, value], ...]} with cases\n"
            "# tp{N}[_dp][_8k] ('' for all) as the script's shell logic sets them; ssm_dtype: SGLang's\n"
            "# --mamba-ssm-dtype (the recurrent state of linear-attention layers; SGLang's default float32).\n")
    args.out.write_text(text + yaml.safe_dump(hist, sort_keys=True, width=120))
    print(f"{len(hist)} scripts, {sum(len(v) for v in hist.values())} versions -> {args.out}")


if __name__ == "__main__":
    main()
