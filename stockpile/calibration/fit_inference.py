"""Fit the calibration parameters to measured inference data (``stockpile calibrate``).

Least squares on log(predicted / measured) with robust losses (soft-L1, then Cauchy, so that rows the model
cannot express stop pulling on the rest), over a small set of global, physically meaningful parameters: per
chip family the achieved fraction of peak FLOP/s and of memory bandwidth, per engine its step and per-sequence
overheads, kernel quality and host launch time, and global shape parameters. Each parameter is fitted in log
space between physical bounds, with a weak prior toward its default so that parameters the data cannot see
stay where physics puts them. No per-row terms exist.
"""
from __future__ import annotations

import datetime as dt
import statistics
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from stockpile.atomic import write_calibration_yaml
from stockpile.calibration.fitter import solve, values_on_bounds
from stockpile.calibration.inference import Batch, Prepared, prepare_file
from stockpile.errors import DataError
from stockpile.perf.calibration import (
    ENGINE_DEFAULTS,
    FAMILY_DEFAULTS,
    FAMILY_GROUPS,
    GLOBAL_DEFAULTS,
    Calibration,
    default_calibration,
    engine_graph_limits,
    regime_key,
)

BOUNDS: dict[str, tuple[float, float]] = {
    "gemm_eff": (0.2, 0.95), "mem_eff": (0.4, 0.95), "step_s": (2e-4, 0.005), "seq_s": (1e-7, 1e-3),
    "kernel_eff": (0.4, 1.2), "ttft_s": (1e-3, 0.3), "eager_layer_s": (1e-5, 3e-3), "eager_moe_s": (1e-5, 6e-3), "moe_eff": (0.1, 1.5), "admit_s": (1e-5, 0.05), "moe_layer_s": (1e-7, 3e-4), "gemm_m_half": (4.0, 512.0), "attn_eff": (0.2, 1.0), "comm_eff": (0.2, 0.95),
    "comm_latency_s": (1e-6, 6e-5), "moe_imbalance": (1.0, 2.5), "fp8_gemm_eff": (0.4, 1.1),
    "fp4_gemm_eff": (0.2, 1.1), "int8_gemm_eff": (0.3, 1.1), "dequant_eff": (0.2, 1.1), "reserve_gb": (0.5, 4.0),
    "sampler_bytes": (4.0, 32.0),
    "burst_tail": (0.01, 3.0), "burst_tail_var": (0.01, 10.0), "overlap_comm": (0.01, 0.9), "sync_eff": (0.01, 1.0), "gemm_n_half": (8.0, 2048.0), "act_rw": (1.0, 40.0), "a2a_latency_s": (3e-6, 3e-4), "expert_mem_eff": (0.3, 1.1), "fp4_mem_eff": (0.2, 1.1),
    "pd_handoff_s": (1e-3, 0.5), "spec_seq_s": (1e-8, 3e-4), "stream_s": (1e-7, 3e-3),
}
FITTED_GLOBALS = ("gemm_m_half", "comm_latency_s", "attn_eff", "comm_eff", "moe_imbalance", "fp8_gemm_eff", "fp4_gemm_eff",
                  "int8_gemm_eff", "dequant_eff", "burst_tail", "burst_tail_var", "overlap_comm", "reserve_gb", "sync_eff", "gemm_n_half", "act_rw", "a2a_latency_s", "expert_mem_eff", "fp4_mem_eff",
                  "pd_handoff_s", "sampler_bytes")
# what vLLM's older release families refit (the rest: their engine's). Each keeps its own launch time per layer of a
# step run outside CUDA graphs: V0 ran every prompt step eagerly (0.53 ms per layer fitted), while V1 runs prompt
# steps as piecewise CUDA graphs with only attention launched from the host (about 0.08 ms per layer fitted for
# the current releases; sharing one value had left the current releases' short-prompt TTFTs high and their
# host time in the fixed terms; docs/validation.md, thirteenth session)
V0_PARAMS = ("step_s", "seq_s", "ttft_s", "admit_s", "eager_layer_s", "eager_moe_s")
RELEASE_PARAMS = {"vllm-v0": V0_PARAMS,                 # release families not listed refit no engine parameter
                  "vllm-v0.11": V0_PARAMS,              # V1 before 0.12: its host costs under 1,000-prompt bursts
                  "sglang-v0.4": ("ttft_s", "eager_layer_s"),    # its host path (before the 0.5 scheduler rework)
                  "trtllm-v0": ("step_s", "seq_s", "ttft_s", "eager_layer_s", "eager_moe_s", "admit_s")}
# an engine's kernels and all-reduce on one chip family ("hopper/sglang"): its own kernel factor and all-reduce
# latency where that regime has rows of several models, pulled toward the engine's (the whole engine's values
# mix chip families whose kernels and collectives are other code: SGLang's on Ascend, say)
KERNEL_REGIME_PARAMS = ("kernel_eff", "comm_latency_s")
KERNEL_REGIME_MODELS = 3  # distinct models a regime needs
# a chip family's grouped-expert kernels: Blackwell's (CUTLASS/TensorRT-LLM grouped GEMMs on fp8 and fp4 experts)
# stream the experts at about the dense GEMMs' share of bandwidth, Hopper's at about 0.7 of it. With one global
# share, the DeepSeek-R1 rows on Blackwell held Blackwell's memory efficiency on its 0.95 bound, and other models
# on B200/B300/GB200/GB300 came out too fast (docs/validation.md, thirtieth session)
FAMILY_KERNEL_PARAMS = ("expert_mem_eff",)
PIECEWISE_REGIME_PARAMS = ("eager_layer_s", "ttft_s")   # a piecewise-graph port's own (piecewise_graphs)
SIM_FIT_REQUESTS = 300   # requests per simulated run inside a fit (validate runs the measured count)
PRIOR_WEIGHT = 0.15     # strength of the pull toward defaults, in log units per residual
F_SCALE = 0.15          # residual scale (log units) where the robust losses stop growing quadratically
DIFF_STEP = 1e-2        # relative finite-difference step of the Jacobian
MAX_RESTARTS = 4        # least-squares runs per loss stage, each from the last optimum
# rounds of the fit against what validate predicts (validate_factors): the fit's inner loop evaluates every row in
# the steady state, where validate runs request-rate rows, vLLM V1 bursts and closed-loop percentiles through the
# scheduler simulation (613 of the 3,464 fitted rows at 9d55cf1c; median 14 % apart). Each round freezes the
# per-row factor from one to the other at the current values and fits the steady state times that factor; 0 fits
# the steady state alone
MATCH_ROUNDS = 1


def default_files() -> list[Path]:
    root = resources.files("stockpile") / "data" / "measurements"
    return [Path(str(root / n)) for n in ("inference_measurements.csv", "inferencex_sample.csv",
                                          "inference_request_rate.csv", "inference_added.csv",
                                          "aic_silicon_sample.csv")
            if (root / n).is_file()]


def _engine_key(engine: str) -> str:
    return engine


def _parameters(preps: list[Prepared]) -> list[tuple[str, str, str]]:
    """(scope, key, name) for every fitted parameter, only for families/engines that have data. An engine release
    family fits only what its releases changed (RELEASE_PARAMS); its MoE kernel maturity on a chip family is a
    regime's own value ("cdna3/sglang-v0.4": moe_eff), where that regime has MoE rows."""
    fams = sorted({FAMILY_GROUPS.get(p.chip.family, p.chip.family) for p in preps})
    engs = sorted({p.engine_key for p in preps})
    out = [("global", "", n) for n in FITTED_GLOBALS]
    out += [("families", f, n) for f in fams for n in FAMILY_DEFAULTS]
    out += [("engines", e, n) for e in engs for n in ENGINE_DEFAULTS if not (e == "trtllm" and n == "kernel_eff")
            and (e == e.split("-v")[0] or n in RELEASE_PARAMS.get(e, ()))]
    moe_regimes = sorted({regime_key(p.chip.family, p.engine_key) for p in preps
                          if p.engine_key != p.engine and p.model.is_moe})
    out += [("regimes", r, "moe_eff") for r in moe_regimes]
    # an engine's kernels on a chip family (KERNEL_REGIME_PARAMS; TensorRT-LLM is the kernel reference, as above)
    models: dict[str, set[str]] = {}
    for p in preps:
        if p.engine != "trtllm":
            models.setdefault(regime_key(p.chip.family, p.engine), set()).add(p.model.id)
    out += [("regimes", r, n) for r in sorted(models) if len(models[r]) >= KERNEL_REGIME_MODELS
            for n in KERNEL_REGIME_PARAMS]
    # an engine's port that replays each layer's graph in pieces on a chip family (defaults.yaml
    # piecewise_graph_families: vLLM-Ascend) pays its own host launch time per layer in every step, and its own
    # fixed time to a first token (its prompt path is the port's, not the engine's: fitted with the engine's,
    # vLLM-Ascend's 2-5x slower first tokens pulled vLLM's ttft_s wherever the engine's other rows were few)
    out += [("regimes", r, n) for r in sorted({regime_key(p.chip.family, p.engine) for p in preps
                                               if piecewise_graphs(p)}) for n in PIECEWISE_REGIME_PARAMS]
    # a chip family's own grouped-expert kernels (FAMILY_KERNEL_PARAMS), where it has rows of several MoE models,
    # pulled toward the global value that every other family keeps
    moe_models: dict[str, set[str]] = {}
    for p in preps:
        if p.model.is_moe:
            moe_models.setdefault(FAMILY_GROUPS.get(p.chip.family, p.chip.family), set()).add(p.model.id)
    out += [("families", f, n) for f in sorted(moe_models) if len(moe_models[f]) >= KERNEL_REGIME_MODELS
            for n in FAMILY_KERNEL_PARAMS]
    return out


def reads(preps: list[Prepared], spec: list[tuple[str, str, str]]) -> np.ndarray:
    """Which rows each fitted parameter can move (rows x parameters): a row is predicted with
    Calibration.params(its chip family, its engine key), which reads every global, its family group's values, its
    engine's and its release family's, and those two regimes' on its family. The fit's Jacobian skips the rest
    (fitter.grouped_jacobian)."""
    scopes = []
    for p in preps:
        release = p.engine_key
        engine = release.split("-v")[0]
        scopes.append({("families", FAMILY_GROUPS.get(p.chip.family, p.chip.family)), ("engines", engine),
                       ("engines", release), ("regimes", regime_key(p.chip.family, engine)),
                       ("regimes", regime_key(p.chip.family, release))})
    return np.array([[scope == "global" or (scope, key) in row for scope, key, _ in spec] for row in scopes],
                    dtype=bool).reshape(len(preps), len(spec))


def piecewise_graphs(p: Prepared) -> bool:
    """True where the row's engine runs no whole-step graph on its chip family (every step launches per layer)."""
    return engine_graph_limits(p.engine, p.chip.family)["graph_max"] == 0.0


def _default(scope: str, name: str) -> float:
    return {**GLOBAL_DEFAULTS, **FAMILY_DEFAULTS, **ENGINE_DEFAULTS}[name]


def _value(cal: Calibration, scope: str, key: str, name: str) -> float:
    """A parameter's value in `cal`, or its default where `cal` does not set it."""
    if scope == "global":
        return float(cal.global_.get(name, _default(scope, name)))
    if scope == "regimes":                       # what the regime resolves to now (its own value, or inherited)
        fam, eng = key.split("/")
        return float(getattr(cal.params(fam, eng), name))
    groups = cal.families if scope == "families" else cal.engines
    group = groups.get(key) or groups.get(key.split("-v")[0]) or {}
    if scope == "families" and name in FAMILY_KERNEL_PARAMS:    # unset: the family inherits the global value
        return float(group.get(name, _value(cal, "global", "", name)))
    return float(group.get(name, _default(scope, name)))


def _prior(start: Calibration | None, scope: str, key: str, name: str) -> float:
    """Where the weak prior pulls: the default; a regime's own value toward what it inherits; a chip family's own
    kernel-class value toward the global one."""
    if scope == "regimes":
        return _value(start or default_calibration(), scope, key, name)
    if scope == "families" and name in FAMILY_KERNEL_PARAMS:
        return _value(start or default_calibration(), "global", "", name)
    return _default(scope, name)


def _build(theta: np.ndarray, spec: list[tuple[str, str, str]], base: Calibration) -> Calibration:
    g = dict(base.global_)
    fams = {k: dict(v) for k, v in base.families.items()}
    engs = {k: dict(v) for k, v in base.engines.items()}
    regs = {k: dict(v) for k, v in base.regimes.items()}
    for (scope, key, name), v in zip(spec, np.exp(theta)):
        if scope == "global":
            g[name] = float(v)
        elif scope == "families":
            fams.setdefault(key, {})[name] = float(v)
        elif scope == "regimes":
            regs.setdefault(key, {})[name] = float(v)
        else:
            engs.setdefault(key, {})[name] = float(v)
    return Calibration(global_=g, families=fams, engines=engs, meta=dict(base.meta), regimes=regs)


def fit(paths: list[Path], *, exclude_source: str | None = None, max_nfev: int = 150,
        start: Calibration | None = None, exclude: Any = None,
        free: Any = None, simulate: bool = False,
        file_weights: dict[str, float] | None = None,
        match_rounds: int = MATCH_ROUNDS) -> tuple[Calibration, dict[str, Any]]:
    """Fit on the rows of `paths` (optionally leaving one source out, or the rows for which `exclude(case)` is
    true); returns the calibration and a report. The fit starts from `start` (e.g. the shipped calibration:
    parameters whose effect is a max() of two terms have no gradient where the start leaves their term
    inactive) and is pulled weakly toward the defaults. With `match_rounds` > 0 the rows validate simulates are
    fitted as validate predicts them (validate_factors), the factors refreshed at the start of each round."""
    preps: list[Prepared] = []
    every: list[Prepared] = []      # with the excluded rows: which parameters the exclusion leaves uninformed
    measured: list[float] = []
    files: list[int] = []
    for k, path in enumerate(paths):
        _, rows, prepared = prepare_file(path)
        every += [pr for pr in prepared if isinstance(pr, Prepared)]
        for row, pr in zip(rows, prepared):
            if (isinstance(pr, Prepared) and (exclude_source is None or source_key(row) != exclude_source)
                    and (exclude is None or not exclude(pr.case))):
                preps.append(pr)
                measured.append(pr.case.measured)
                files.append(k)
    if not preps:
        raise DataError("no predictable rows to calibrate on")
    meas = np.array(measured)
    # weight each publication by 1/sqrt(rows): large sources do not drown small ones, and no source decides alone
    counts = Counter(source_key_case(p) for p in preps)
    weight = np.array([1.0 / np.sqrt(counts[source_key_case(p)]) for p in preps])
    # and each file (a benchmark suite) carries the same total weight. (Weighting by publication alone, with
    # files unbalanced, was tried: the one-publication InferenceX file then lost 5 points)
    fidx = np.array(files)
    for k in set(files):
        weight[fidx == k] /= weight[fidx == k].sum()
        weight[fidx == k] *= (file_weights or {}).get(paths[k].name, 1.0)
    weight *= len(weight) / weight.sum()
    base = Calibration(global_=dict(GLOBAL_DEFAULTS), families={"default": dict(FAMILY_DEFAULTS)},
                       engines={"default": dict(ENGINE_DEFAULTS)}, meta={})
    spec = _parameters(preps)
    lost: set[tuple[str, str, str]] = set()
    if free is not None:
        # a partial refit: only the parameters `free(scope, key, name)` selects move; the rest keep `start`
        spec = [t for t in spec if free(*t)]
        if start is not None:
            base = Calibration(global_=dict(start.global_), families={k: dict(v) for k, v in start.families.items()},
                               engines={k: dict(v) for k, v in start.engines.items()}, meta={},
                               regimes={k: dict(v) for k, v in start.regimes.items()})
            # a selected parameter with no rows left to inform it (its chip family, engine release or regime
            # held out) does not keep what `start` learnt from those rows: it falls back to what it inherits
            lost = set(_parameters(every)) - set(_parameters(preps))
            groups = {"families": base.families, "engines": base.engines, "regimes": base.regimes}
            for scope, grp in groups.items():
                for key, values in grp.items():
                    for name in [n for n in values if free(scope, key, n) and (scope, key, n) in lost]:
                        del values[name]
    prior = np.log([_prior(start, s, k, n) for s, k, n in spec])
    x0 = prior.copy()
    if start is not None:
        x0 = np.log([_value(start, s, k, n) for s, k, n in spec])
    lo = np.log([BOUNDS[n][0] for _, _, n in spec])
    hi = np.log([BOUNDS[n][1] for _, _, n in spec])
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
    prior = np.clip(prior, lo + 1e-9, hi - 1e-9)

    # request-rate rows through the steady state (fast), or through the scheduler simulation as validate runs them
    # (runs capped at SIM_FIT_REQUESTS requests per instance to keep a Jacobian affordable)
    batch = Batch(preps, simulate=simulate, max_requests=SIM_FIT_REQUESTS if simulate else None, simulate_bursts=False)
    touched = reads(preps, spec)

    # two stages: soft-L1 from the start finds the basin; a Cauchy loss from there (redescending: rows the model
    # cannot express, e.g. harness-specific TTFT, stop pulling) fits the bulk of the rows. The model is piecewise
    # smooth (batch limits, min/max of bounds), so the Jacobian uses 1 % steps (fitter.solve)
    # validate's prediction of a simulated row differs from the steady state's by a factor that the parameters move
    # little: frozen at the round's starting values, the fit sees what validate will report (match_rounds)
    theta, r0, nfev, matched = x0, None, 0, 0
    for k in range(max(match_rounds, 0) or 1):
        if match_rounds > 0:
            # the first round's factors at `start` itself where the fit keeps all of it (the values a fit from
            # `start` begins at, to within the 1e-9 kept off the bounds)
            at = start if k == 0 and start is not None and free is not None and not lost else _build(theta, spec, base)
            batch.scale = validate_factors(preps, at, batch)
            matched = int(np.sum(np.abs(batch.scale - 1.0) > 1e-3))
        sol = solve(lambda th: np.array(batch.run(_build(th, spec, base))), meas, theta, lo=lo, hi=hi, prior=prior,
                    prior_weight=PRIOR_WEIGHT, weights=weight, losses=("soft_l1", "cauchy"), f_scale=F_SCALE,
                    max_nfev=max_nfev, diff_step=DIFF_STEP, restarts=MAX_RESTARTS, touched=touched)
        theta, nfev = sol.theta, nfev + sol.nfev
        r0 = sol.rows_start if r0 is None else r0
    assert r0 is not None
    r1 = sol.rows
    cal = _build(sol.theta, spec, base)
    cal.meta = {"fitted": dt.date.today().isoformat(), "rows": len(preps),
                "files": [p.name for p in paths], "excluded_source": exclude_source,
                "sources": dict(Counter(source_key_case(p) for p in preps)),
                "publications": sorted({p.case.publication for p in preps if p.case.publication}),
                "loss": f"soft_l1 then cauchy on log(pred/measured), f_scale {F_SCALE}, rows weighted 1/sqrt(rows of "
                        "their source), each file the same total weight; weak log prior toward defaults",
                "matched_to_validate": f"{matched} simulated rows by a frozen factor, {max(match_rounds, 0)} round(s)",
                "median_ape": round(float(np.median(np.abs(np.expm1(r1)))), 4)}
    report = {"rows": len(preps), "median_ape_before": float(np.median(np.abs(np.expm1(r0)))),
              "median_ape_after": float(np.median(np.abs(np.expm1(r1)))), "nfev": nfev, "matched_rows": matched,
              "parameters": {f"{s}.{k}.{n}".replace("..", "."): float(v)
                             for (s, k, n), v in zip(spec, np.exp(sol.theta))}}
    return cal, report


def validate_factors(preps: list[Prepared], cal: Calibration, fast: Batch) -> np.ndarray:
    """Per row, validate's prediction over the fit's fast one (`fast`, without its factors) under `cal`: 1 where
    both evaluate the row alike or either predicts nothing."""
    scale, fast.scale = fast.scale, None
    try:
        quick = np.array(fast.run(cal), dtype=float)
    finally:
        fast.scale = scale
    full = np.array(Batch(preps).run(cal), dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = full / quick
    return np.where(np.isfinite(ratio) & (ratio > 0), ratio, 1.0)


def source_key(row: dict[str, str]) -> str:
    """A row's publication: the id prefix names it (trtllm017, gpustack, dstack, sgl, ix, ...)."""
    return (row.get("id") or "").split("-")[0]


def source_key_case(p: Prepared) -> str:
    return p.case.row_id.split("-")[0]


def write_calibration(cal: Calibration, path: Path | None = None) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves a half-written calibration."""
    dest = Path(path) if path else Path(str(resources.files("stockpile") / "data" / "calibration" / "inference.yaml"))
    return write_calibration_yaml(dest, meta=cal.meta, global_=cal.global_,
                                  groups={"families": cal.families, "engines": cal.engines,
                                          **({"regimes": cal.regimes} if cal.regimes else {})},
                                  header="# Written by `stockpile calibrate`; see docs/inference-model.md for "
                                         "each parameter.\n")


def publication_of(row: dict[str, str]) -> str:
    """A row's publication: its source URL up to the fragment (issue 13's unit of leave-one-out)."""
    return (row.get("source_url") or "").split("#")[0].strip() or source_key(row)


def model_family_of(model_id: str) -> str:
    """A model's architecture family (its HF model_type), or "unknown"."""
    from stockpile.catalog import get_model
    from stockpile.errors import StockpileError
    try:
        return get_model(model_id).architecture
    except StockpileError:
        return "unknown"


def chip_family_of(chip_id: str) -> str:
    """A chip's calibration family group (hopper, blackwell, cdna3, ...), or "unknown"."""
    from stockpile.catalog import get_chip
    from stockpile.errors import StockpileError
    try:
        fam = get_chip(chip_id).family
    except StockpileError:
        return "unknown"
    return FAMILY_GROUPS.get(fam, fam)


def set_in(cal: Calibration) -> Any:
    """A `free` selector for `fit`: the parameters `cal` itself sets (its structure), no others. Refitting a
    calibration with it moves what that calibration fitted and keeps what it fixed (grid-chosen values such as an
    engine's own all-reduce latency) instead of fitting a model with a different set of parameters."""
    groups = {"global": {"": cal.global_}, "families": cal.families, "engines": cal.engines, "regimes": cal.regimes}

    def free(scope: str, key: str, name: str) -> bool:
        return name in groups[scope].get(key, {})
    return free


def on_bounds(cal: Calibration, rel: float = 0.01) -> list[tuple[str, float, float, str]]:
    """Fitted values within `rel` of a BOUNDS edge: (parameter, value, bound, "lower"/"upper"). A parameter the
    data push against its physical limit is a sign of missing physics, not a fitted value."""
    scoped = [("", cal.global_)] + [(f"{k}.", v) for grp in (cal.families, cal.engines, cal.regimes)
                                    for k, v in grp.items()]
    return values_on_bounds(scoped, BOUNDS, rel)


def _group_of_row(by: str) -> Any:
    """A row's group under `by` (publication, source, model family or chip family)."""
    return {"publication": publication_of, "source": source_key,
            "model_family": lambda r: model_family_of(r.get("model", "")),
            "chip_family": lambda r: chip_family_of(r.get("accelerator", ""))}[by]


def group_sizes(paths: list[Path], by: str) -> Counter[str]:
    """Rows per group (`by`: publication, source, model_family, chip_family) over the files."""
    from stockpile.calibration.rows import read_rows
    try:
        key_of = _group_of_row(by)
    except KeyError:
        raise ValueError("by must be one of publication, source, model_family, chip_family") from None
    keys: Counter[str] = Counter()
    for path in paths:
        keys.update(key_of(r) for r in read_rows(path)[1])
    return keys


def _group_of_case(by: str) -> Any:
    return {"publication": lambda c: c.publication, "source": lambda c: c.row_id.split("-")[0],
            "model_family": lambda c: model_family_of(c.model), "chip_family": lambda c: chip_family_of(c.chip)}[by]


Scores = dict[str, tuple[list[float], list[list[Any]]]]


def _score(cal: Calibration, paths: list[Path], by: str) -> Scores:
    """Per group: |error| of its predicted rows under `cal`, and the rows themselves as [file, id, metric,
    measured, predicted] (their band is the caller's to state; a band rule can be scored again on held-out
    predictions without refitting: bench/band_heldout.py --from-log)."""
    from stockpile.calibration.rows import read_rows
    from stockpile.calibration.validate import validate_file
    key_of = _group_of_row(by)
    got: Scores = {}
    for path in paths:
        _, rows = read_rows(path)
        group = {(r.get("id", ""), r.get("metric", "")): key_of(r) for r in rows}
        for r in validate_file(path, cal)["rows"]:
            if r["status"] != "ok":
                continue
            apes, recs = got.setdefault(group[(r["id"], r["metric"])], ([], []))
            apes.append(abs(r["error"]))
            recs.append([Path(path).name, r["id"], r["metric"], r["measured"], r["predicted"]])
    return got


def _held_out(paths: list[Path], by: str, key: str | None, max_nfev: int,
              start: Calibration | None) -> Scores:
    """Refit without group `key` (None: the control, nothing held out) and score every group. Module level, so
    that a process pool can run the refits side by side."""
    case_key = _group_of_case(by)
    free = set_in(start) if start is not None else None
    exclude = None if key is None else (lambda c: case_key(c) == key)
    cal, _ = fit(paths, max_nfev=max_nfev, start=start, exclude=exclude, free=free)
    return _score(cal, paths, by)


def leave_one_source_out(paths: list[Path], *, min_rows: int = 10, max_nfev: int = 40, start: Calibration | None = None,
                         by: str = "source", control: bool = False, jobs: int = 1,
                         on_result: Callable[[str, dict[str, Any]], None] | None = None,
                         skip: Collection[str] = (),
                         on_control: Callable[[dict[str, float | None]], None] | None = None
                         ) -> dict[str, dict[str, Any]]:
    """For each source (`by="source"`: the id prefix), publication (`by="publication"`: the source URL), model
    family (`by="model_family"`) or chip family (`by="chip_family"`): fit without its rows, predict them; the
    median |error| on rows the fit never saw, and the share of their measured values inside the p10-p90 band
    stated with the held-out prediction (`band_coverage`). With `start`, the refit moves the parameters `start`
    sets, from their values there, and keeps the rest of `start` (`set_in`): the held-out error of that
    calibration's own model, not of a different parameter set fitted from it. With `control`, the same refit
    with nothing held out predicts every group too (`median_ape_control`): the held-out error minus that is what
    not seeing the group costs, apart from where the refit's optimum differs from `start`. `jobs` > 1 runs the
    refits in that many processes; `on_result(key, result)` is called as each group's result arrives (progress,
    or a log that survives an interrupted run); `skip` leaves out groups already done (a resumed run), and
    `on_control` receives the control's median per group when it arrives. Each result holds its predicted rows
    (`rows`: [file, id, metric, measured, predicted]) for scoring another band rule on them."""
    keys = group_sizes(paths, by)
    todo = [k for k, n in sorted(keys.items()) if n >= min_rows and k not in skip]

    def med(xs: list[float]) -> float | None:
        return round(statistics.median(xs), 4) if xs else None

    where: dict[tuple[str, str, str], tuple[str, str, str, str]] = {}

    def result(key: str, got: Scores) -> dict[str, Any]:
        # a held-out publication is new to the refitted calibration: its values against the band stated for a
        # publication the fit has not seen (validate states the in-sample one for the shipped rows)
        from stockpile.calibration.bands import inside_bands, regimes
        apes, recs = got.get(key, ([], []))
        if not where:
            where.update(regimes(paths))
        inside = inside_bands(recs, where, seen=False)
        return {"n": keys[key], "n_predicted": len(apes), "median_ape": med(apes),
                "band_coverage": round(sum(inside) / len(inside), 4) if inside else None, "rows": recs}

    tasks: list[str | None] = ([None] if control else []) + list(todo)

    def finished() -> Iterator[tuple[str | None, Scores]]:
        """(group or None for the control, its scores), in the order the refits finish."""
        if jobs <= 1:
            yield from ((key, _held_out(paths, by, key, max_nfev, start)) for key in tasks)
            return
        from concurrent.futures import ProcessPoolExecutor, as_completed
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_held_out, paths, by, key, max_nfev, start): key for key in tasks}
            yield from ((futures[fut], fut.result()) for fut in as_completed(futures))

    out: dict[str, dict[str, Any]] = {}
    base: Scores = {}
    for key, got in finished():
        if key is None:
            base = got
            if on_control is not None:
                on_control({k: med(v[0]) for k, v in got.items()})
            continue
        out[key] = result(key, got)
        if on_result is not None:
            on_result(key, out[key])
    if control:
        for key in out:
            out[key]["median_ape_control"] = med(base.get(key, ([], []))[0])
    return {k: out[k] for k in todo if k in out}
