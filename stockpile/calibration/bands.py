"""Uncertainty bands: every prediction carries the spread of the validated error of its regime.

A regime is (engine release family, chip family group, metric kind, load kind). From `validate` on the shipped
measurements, the 10th and 90th percentiles of log(measured / predicted) in each regime with at least MIN_ROWS
rows are stored in data/calibration/bands.yaml (`python -m stockpile.calibration.bands` rewrites it after a
refit). A prediction's band is predicted x exp(w q10) .. predicted x exp(w q90), from its own regime, or else the
first of its broader groups that has enough rows (engine x metric x load, metric x load, metric, all); the
result says which group it came from and how many rows back it. The quantiles are widened in log units by
WIDEN for a row of a publication the fit has seen (validate on the shipped rows) and by UNSEEN_WIDEN for
anything else (a new publication's rows, every estimate and search): in-sample residuals understate the error
on data no fit has seen.

Training predictions get the same from the shipped training file, per chip family x metric kind (a rate: MFU,
TFLOPS, tokens/s; a time: GPU-hours, days) x dense/MoE (`training_bands` in the same file).
"""
from __future__ import annotations

from collections import defaultdict
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from stockpile.catalog.chips import get_chip
from stockpile.perf.calibration import FAMILY_GROUPS
from stockpile.perf.frameworks import FAMILY_GROUPS as TRAIN_GROUPS

MIN_ROWS = 15
# In-sample residuals understate the error on data the fit never saw. Two corrections, both checked on held-out
# residuals (bench/band_heldout.py: five folds of publications, each predicted by the calibration refitted without
# it; docs/validation.md "Uncertainty bands"):
# - a regime's quantiles are shrunk toward those of its broader group, with weight n / (n + SHRINK_ROWS) for a
#   regime of n rows: a regime fitted on one or two publications has narrow in-sample residuals that a new
#   publication does not keep to;
# - the result is widened by WIDEN in log units.
# WIDEN now applies only to the rows of publications the fit has seen (validate on the shipped files; any other
# prediction takes UNSEEN_WIDEN below), and is chosen by the rule the other widenings follow: the smallest, in steps
# of 0.05, at which 80 % of those values fall inside (bench/band_heldout.py's `in_sample`). On the calibration of
# the thirty-ninth session: 0.95 79.9 %, 1.0 81.3 % (1.15, chosen when it also stood for held-out rows, 85.0 %, past
# the 75-85 % the issue asks for; 84.7 % on earlier calibrations). Forty-second session: with a burst's mean TPOT
# taken over its requests 0.95 held 80.01 %; with an MoE layer's short kernels scaled by its expert count too,
# 0.95 79.92 %, so 1.0.
SHRINK_ROWS = 1000.0
WIDEN = 1.0
# A prediction for a publication the fit has not seen (a user's own deployment, `estimate`, `search`, a measured file
# from another source) errs more than the shipped rows do in sample: held out one publication at a time, about
# twice as many measured values fall outside the in-sample band. Its band is the same regime's, widened by
# UNSEEN_WIDEN instead of WIDEN, set from every held-out value there is (bench/band_heldout.py --from-log ... --unseen):
# the leave-one-publication-out residuals (each publication's held-out values against the bands built without its
# rows; docs/validation.md) pooled with inference_unseen.csv, whose publications no fit has used: the smallest
# widening, in steps of 0.05, at which 80 % of them fall inside. On calibration 9d55cf1c (all 32 publications, 3,344
# values, and 673 unseen ones): 1.5 79.4 % (the publications 80.2 %, the unseen file 75.2 %), 1.55 80.8 % (81.3 %,
# 78.0 %), since 16-bit GEMMs pay a tensor-core tile (79.1 % and 80.6 %, the unseen file 73.9 / 76.8 %, before).
# Until 2026-12-06 the rule scored the leave-one-out values alone, and chose 1.5 on 9d55cf1c, 1.55 on
# 5affa6d9 and 1.6 on 21d22619, while the unseen file, harder than any held-out publication, stayed under 75 %.
# On the thirty-ninth session's calibration (the fit seeing simulated rows as validate predicts them; all 32
# publications, 3,344 values, and the 673 unseen ones): 1.35 79.5 %, 1.4 80.4 % (the publications 81.3 %, the unseen
# file 76.1 %); with the forty-third session's sparse-attention work and trtllm-bench limits, on that session's rerun
# of all 32 publications (now ..._s43.jsonl; the thirty-ninth's is ..._s39.jsonl): 1.4 79.9 %, 1.45 80.8 % (the
# publications 81.6 %, the unseen file 76.7 %); with the forty-fourth session's TensorRT-LLM batch waiting and memory
# fraction and its rebuilt in-sample quantiles, on its rerun (bench/results/lopo_publications_057f438a.jsonl):
# 1.35 79.4 %, 1.4 80.3 %; with the forty-eighth session's vLLM profiling sampler (calibration f2b0557b, all 32
# publications, bench/results/lopo_publications_f2b0557b.jsonl): 1.4 79.9 %, 1.45 80.9 % (the publications 81.4 %,
# the unseen file 78.3 %)
UNSEEN_WIDEN = 1.45
TRAIN_WIDEN = 1.1   # training bands: in-sample quantiles x 1.1 (docs/training-model.md)
# a training run of a source the fit has not seen (`train`, a new publication's rows): held out one source at a
# time (fit_training.leave_one_source_out), a third to a half of the measured values fall outside the in-sample
# band. By the same rule as UNSEEN_WIDEN: the smallest widening, in steps of 0.1, at which 80 % of every held-out
# training value there is fall inside: the sources held out (quantiles rebuilt without the source's rows) pooled
# with training_unseen.csv, which no fit uses (bench/band_heldout.py --training --unseen ...), each value weighing
# n^-0.5 for a source of n values, as the fit weighs rows (fit_training.SOURCE_WEIGHT_POWER; each publication of the
# unseen file a source): 1.7 77.6 %, 1.8 81.0 % (the unseen file alone 72.3 and 80.0 %; pooled row by row 78.1 and
# 81.1 %) since a catalogued model's layers column makes a reduced variant and an MoE row's ffn_hidden is its expert
# width (MindSpeed's 16-layer DeepSeek-V2 and 12-layer Grok-1 had been sized as GQA models of params_b: +174 and
# +53 %, now +61 and +16 %), which narrowed the in-sample quantiles. 1.7 (1.6 77.4 %, 1.7 80.4 %) since figures via a
# secondary source were validated, not fitted (MindSpeed held out 72 -> 15 %). 2.0 the day
# MindSpeed-LLM's 68-row Ascend table was fitted (1.9 78.6 %, 2.0 80.4 %; held out, it was 72 % off, predicted from
# Pangu's three secondary rows; pooled row by row that one table would have set x2.7).
# History: 2.2 (2.1 79.7 %, 2.2 80.5 %, the unseen file 51 of 65) once the Megatron-Core MoE report's and its
# Parallel Folding paper's runs were in the unseen file and a Megatron MoE dispatch padded to capacity paid no host
# wait (2.3 before them: 2.2 79.6 %, 2.3 81.5 %, the unseen file 36 of 50); 2.3 once AMD's ROCm FSDP and Primus runs
# and torchtitan's H200 runs were fitted (training_added.csv), the unseen file held AMD's young MoE stacks (Primus,
# MaxText on ROCm) and torchtitan's DeepEP runs on B200, and a PyTorch MoE run on DeepEP waited on the host each MoE
# layer (2.4 before that: 2.3 79.9 %, 2.4 80.9 %; 2.3 with the FSDP and H200 rows alone: 2.2 78.3 %, 2.3 80.2 %);
# 2.4 (2.3 79.1 %, 2.4 81.8 %) when Megatron's block recompute, NeMo
# 1.x's bf16 gradients, Hopper-native attention and TP overlap in the NVLink domain joined; 2.5 from the day the
# TPU v6e AQT-int8 rows joined the held-out values, 2026-12-06 (2.4 79.8 %, 2.5 81.5 %). Until
# 2026-12-06 the rule scored the held-out sources alone and chose 2.0 (the unseen file 14 of 31), with a scorer that
# gave rows of the shipped file whose id another source repeats that row's regime
TRAIN_UNSEEN_WIDEN = 1.8
THROUGHPUT = ("output_tokens_per_s", "output_tokens_per_s_per_gpu", "total_tokens_per_s",
              "total_tokens_per_s_per_gpu", "requests_per_s")


def metric_kind(metric: str) -> str:
    return "throughput" if metric in THROUGHPUT else metric.replace("_ms", "").replace("_s", "")


def load_kind(concurrency: float | None, request_rate: float | None, num_requests: float | None) -> str:
    if request_rate:
        return "rate"
    if num_requests and (not concurrency or concurrency >= num_requests):
        return "burst"
    return "closed" if concurrency else "offline"


def keys(engine: str, family: str, metric: str, load: str) -> list[str]:
    """Most specific first."""
    fam = FAMILY_GROUPS.get(family, family)
    m = metric_kind(metric)
    return [f"{engine}|{fam}|{m}|{load}", f"{engine}|*|{m}|{load}", f"*|*|{m}|{load}", f"*|*|{m}|*", "*|*|*|*"]


@cache
def _doc() -> dict[str, Any]:
    """bands.yaml, read once: `bands` (inference regimes) and `training_bands`."""
    path = resources.files("stockpile") / "data" / "calibration" / "bands.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def table() -> dict[str, dict[str, float]]:
    return _doc().get("bands", {})


def _shrunk(t: dict[str, dict[str, float]], ks: list[str], widen: float = WIDEN) -> tuple[float, float, str, int] | None:
    """(low factor, high factor, group, rows): the quantiles of the most specific of `ks` that `t` holds,
    each level shrunk toward the broader one below it (weight n / (n + SHRINK_ROWS)), widened by `widen`."""
    chain = [k for k in ks if k in t]
    if not chain:
        return None
    lo, hi = float(t[chain[-1]]["q10"]), float(t[chain[-1]]["q90"])
    for k in reversed(chain[:-1]):
        n = float(t[k]["n"])
        a = n / (n + SHRINK_ROWS)
        lo, hi = a * float(t[k]["q10"]) + (1 - a) * lo, a * float(t[k]["q90"]) + (1 - a) * hi
    return float(np.exp(widen * lo)), float(np.exp(widen * hi)), chain[0], int(t[chain[0]]["n"])


def _lookup(t: dict[str, dict[str, float]], ks: list[str], widen: float = 1.0) -> tuple[float, float, str, int] | None:
    """(low factor, high factor, group, rows) of the first of `ks` (most specific first) that `t` holds, its
    quantiles widened by `widen` in log units."""
    for k in ks:
        if k in t:
            b = t[k]
            return float(np.exp(widen * b["q10"])), float(np.exp(widen * b["q90"])), k, int(b["n"])
    return None


def band(engine: str, family: str, metric: str, load: str, seen: bool = False) -> tuple[float, float, str, int] | None:
    """(low factor, high factor, group, rows) for a prediction, or None without any band data. `seen`: the
    prediction is of a publication the fit has seen (validate on the shipped rows: in-sample error, WIDEN);
    otherwise a new one's (UNSEEN_WIDEN)."""
    return _shrunk(table(), keys(engine, family, metric, load), WIDEN if seen else UNSEEN_WIDEN)


def fitted_publications(meta: dict[str, Any] | None = None) -> frozenset[str]:
    """The publications (source URLs without their fragment) whose rows the shipped calibration was fitted on,
    and those a calibration's own `meta` says it was fitted on (a refit, a user's profile from
    `stockpile calibrate`): their rows are in sample for it."""
    own = set((meta or {}).get("publications") or []) | set(((meta or {}).get("profile") or {}).get("publications")
                                                           or [])
    return _fitted() | frozenset(own)


@cache
def _fitted() -> frozenset[str]:
    return frozenset(_doc().get("fitted_publications") or [])


def regimes(paths: list[Path] | None = None) -> dict[tuple[str, str, str], tuple[str, str, str, str]]:
    """(file name, row id, metric) -> the (engine, chip family, metric, load) a band is looked up by, for every
    row the model takes of the inference files `paths` (default: the shipped ones)."""
    from stockpile.calibration.fit_inference import default_files
    from stockpile.calibration.inference import Prepared, prepare_file
    out = {}
    for path in paths or default_files():
        for p in prepare_file(path)[2]:
            if isinstance(p, Prepared):
                c = p.case
                out[(Path(path).name, c.row_id, c.metric)] = (p.engine_key, p.chip.family, c.metric,
                                                         load_kind(c.concurrency, c.request_rate, c.num_requests))
    return out


def inside_bands(records: list[list[Any]], where: dict[tuple[str, str, str], tuple[str, str, str, str]] | None = None,
                 seen: bool = False) -> list[bool]:
    """For predictions made elsewhere (a leave-one-out log's rows: [file, id, metric, measured, predicted]),
    whether each measured value lies inside the band the current rule states (`seen`: as for a publication the
    fit has seen; by default as for a new one, which a held-out publication is); rows without a regime or a
    band are left out."""
    where = regimes() if where is None else where
    out = []
    for f, i, m, measured, predicted in records:
        k = where.get((f, i, m))
        b = band(*k, seen=seen) if k is not None else None
        if b is not None and predicted and measured:
            out.append(b[0] * predicted <= measured <= b[1] * predicted)
    return out


# A chip family with no validated rows at all borrows the other families' band (a broader group's), widened
# again in log units. Held out one chip family at a time (bench/loso_families.py chip_family --log, then
# band_heldout.py --from-log; quantiles rebuilt without the family's rows), the band for unseen data (x UNSEEN_WIDEN)
# already covers 82 % of all held-out values, but 59 % of the young software stacks' (YOUNG_STACKS: 519 values on
# calibration 21d22619; CDNA3 held out is 52 % off, Ascend 63 %). The chips without rows (Kunlun, Cambricon, Gaudi,
# TPU) are young stacks of that kind, so theirs is widened by the smallest factor, in steps of 0.05 on top of
# UNSEEN_WIDEN, at which 80 % of the young stacks' held-out values fall inside: 2.0 on calibration f2b0557b (the
# forty-eighth session's vLLM profiling sampler; its family log bench/results/loso_chip_family_f2b0557b.jsonl, on top
# of 1.45: 79.58 % at 1.95, 80.54 % at 2.0; 2.9 in log units in all); 2.05 on calibration 057f438a with the
# family log of the forty-sixth session's code with the quantiles rebuilt after the forty-seventh session's fix of the
# disaggregated batch under a request rate and a concurrency cap (on top of 1.4: 79.96 % at 2.0, 80.54 % at 2.05); 2.0 on the
# family log rerun on the forty-sixth session's code (SGLang's derived memory fraction, shared prompt sets; on top of
# 1.4: 79.4 % at 1.95, 80.15 % at 2.0; 2.8 in log units in all; 2.1 on the forty-fifth session's log with these
# quantiles); 2.05 with the family log rerun on the forty-fifth session's code (79.4 % at 2.0, 80.35 % at 2.05; 2.87
# in log units in all); 2.0 with the forty-fourth session's in-sample quantiles on the fortieth's log (on top of 1.4: 79.8 %
# at 1.95, 80.7 % at 2.0; 2.8 in log units in all; on top of 1.45 it was 1.95, 81.3 %); 1.9 with the forty-third's (79.4 % at 1.85, 80.35 % at 1.9; 2.76 in log units in all); 1.95 in the
# fortieth (on top of 1.4: 79.96 % at 1.9, 80.7 % at 1.95; 2.73 in log units in all). Earlier: 1.8 on
# 9d55cf1c (on top of 1.55: 79.4 % at 1.75, 80.9 % at 1.8, 2.79 in all; on top of 1.5 it took 1.85), 1.85 on 21d22619
# (on top of 1.6: 79.2 % at 1.8, 81.3 % at 1.85); an earlier calibration shipped 1.5, though its 420 such values
# reached 80 % only at 2.3
YOUNG_STACKS = ("ascend", "cdna3", "cdna4")
UNSEEN_FAMILY_WIDEN = 2.0


def family_seen(family: str) -> bool:
    """Whether this chip family has validated rows: the shipped inference bands hold a regime of its calibration
    group, or a chip of this very family is among the validated chips (Ascend: 63 rows on 910B/910C, too few in
    any one regime to make a band of their own)."""
    fam = FAMILY_GROUPS.get(family, family)
    return any(k.split("|")[1] == fam for k in table()) or family in _validated_families()


@cache
def _validated_families() -> frozenset[str]:
    """Catalog families of the chips with validated inference rows (bands.yaml is read once, so this is too)."""
    return frozenset(get_chip(c.split("/")[0]).family for c in _doc().get("validated_chips") or [])


def model_family(model: Any) -> str:
    """A model's family as the catalog names it (its index entry), else its config's model_type."""
    return str(getattr(model, "family", "") or getattr(model, "architecture", ""))


def model_family_validated(model: Any, training: bool = False) -> bool:
    """Whether the shipped inference (training) measurements back this model: rows of its family (bands.yaml
    `validated_model_families`, `validated_training_model_families`; True where the file predates the list), or it
    is a plain dense decoder (GQA or MHA, sliding windows allowed: Qwen3-32B is Llama's arithmetic under
    another family name). Experts, MLA, sparse, pooled or linear attention, a latent MoE: its family's rows."""
    fams = _doc().get("validated_training_model_families" if training else "validated_model_families")
    plain = not (model.is_moe or model.is_mla or model.sparse_attn_topk or model.csa_layers or model.hca_layers
                 or model.linear_params_per_layer or model.linear_state_bytes_per_layer)
    return fams is None or plain or model_family(model) in fams


def unbacked_family(model: Any, training: bool = False) -> list[str]:
    """A note for `estimate`, `search` and `train` where no measured row (training run) of the model's family backs
    the answer (model_family_validated), else nothing."""
    if model_family_validated(model, training):
        return []
    return [f"no measured {'training run' if training else 'row'} of a {model_family(model)} model: predicted from its "
            "shapes with efficiencies fitted on other families (held out one family at a time, such predictions err "
            "about twice as much as in sample; the band is the one for unseen data)"]


def chip_validated(chip_id: str, training: bool = False) -> bool:
    """Whether the shipped measurements hold validated rows on this very chip. Its figures' errors are then
    already inside the residual bands, so its estimated figures widen nothing; a chip without rows (MI308X,
    Kunlun P800, a user's chip file) carries their ranges on top."""
    return chip_id in (_doc().get("validated_training_chips" if training else "validated_chips") or [])


def widened(b: tuple[float, float, str, int], family: str, edge: tuple[float, float] = (1.0, 1.0),
            seen: bool | None = None) -> tuple[float, float, list[str]]:
    """A band (low, high factors) made honest for what the validation did not cover: widened in log units for a
    chip family without validated rows, and stretched by `edge`, the prediction's own ratios with the chip's
    estimated figures at the slow and fast ends of their ranges (catalog/figure_ranges.py). `seen`: whether the
    family has validated rows (default: it has inference bands). Returns the factors and the reasons in words."""
    lo, hi = b[0], b[1]
    why = []
    if not (family_seen(family) if seen is None else seen):
        lo, hi = lo ** UNSEEN_FAMILY_WIDEN, hi ** UNSEEN_FAMILY_WIDEN
        why.append(f"no validated rows on {family} chips: the band of other chips, widened x{UNSEEN_FAMILY_WIDEN:g}")
    e_lo, e_hi = min(edge), max(edge)
    if e_lo < 0.995 or e_hi > 1.005:
        lo, hi = lo * min(e_lo, 1.0), hi * max(e_hi, 1.0)
        why.append(f"estimated chip figures at the ends of their ranges move it {100 * (e_lo - 1):+.0f} %.."
                   f"{100 * (e_hi - 1):+.0f} %")
    return lo, hi, why


Z90 = 1.2815516     # the standard normal's 90th percentile


def quantile_factor(lo: float, hi: float, confidence: float) -> float:
    """Measured / predicted at the `confidence` quantile of a band's error, reading its p10-p90 factors
    (`lo`, `hi`) as a lognormal's: centre (ln lo + ln hi) / 2, spread (ln hi - ln lo) / (2 z90). 0.9 gives `hi`;
    0.5 gives the centre, i.e. only the regime's bias. A latency target met by predicted x this factor is met
    by that share of measured runs like those the band was validated on."""
    from statistics import NormalDist
    a, b = np.log(lo), np.log(hi)
    return float(np.exp((a + b) / 2.0 + NormalDist().inv_cdf(confidence) * (b - a) / (2.0 * Z90)))


def describe(lo: float, hi: float, group: str, n: int, family: str | None = None) -> str:
    """The band in words; with the chip `family`, says when its own regime had too few rows and the band is a
    broader group's."""
    eng, fam, m, load = group.split("|")
    where = " ".join(x for x in (f"{fam}" if fam != "*" else "", f"with {eng}" if eng != "*" else "") if x)
    thin = (f"; fewer than {MIN_ROWS} validated rows on {family} chips{' with ' + eng if eng != '*' else ''}, so "
            "the band of a broader group" if family and fam == "*" else "")
    return (f"typically {100 * (lo - 1):+.0f} %..{100 * (hi - 1):+.0f} % ({m}, {load if load != '*' else 'any'} load"
            f"{', ' + where if where else ''}; {n} validated rows{thin}; the error on publications the fit has "
            "not seen)")


def _quantiles(res: dict[str, list[float]], widen: float = 1.0) -> dict[str, dict[str, float]]:
    """10th/90th percentiles (x widen) of the log residuals of every group with at least MIN_ROWS rows."""
    return {k: {"q10": round(widen * float(np.quantile(v, 0.1)), 4), "q90": round(widen * float(np.quantile(v, 0.9)), 4),
                "n": len(v)} for k, v in sorted(res.items()) if len(v) >= MIN_ROWS}


# ------------------------------------------------------------------ training
TRAIN_TIME = ("gpu_hours", "days", "step_time_s")


def training_keys(family: str, metric: str, moe: bool) -> list[str]:
    """Most specific first: chip family x metric kind (rate: MFU, HFU, TFLOPS, tokens/s; time: GPU-hours,
    days, step time) x dense/MoE, then broader groups."""
    fam = TRAIN_GROUPS.get(family, family)
    kind = "time" if metric in TRAIN_TIME else "rate"
    arch = "moe" if moe else "dense"
    return [f"{fam}|{kind}|{arch}", f"*|{kind}|{arch}", f"*|{kind}|*", "*|*|*"]


def training_family_seen(family: str) -> bool:
    """Whether this chip architecture has validated training rows (the bands group chips as the fit does, and the
    fit shares one efficiency across AMD's CDNA generations: MI250X's CDNA2 takes what
    MI300X's rows fitted, but no row measures it)."""
    fams = _doc().get("validated_training_families")
    if fams is not None:
        return family in fams
    from stockpile.perf.training import load_training_calibration
    return TRAIN_GROUPS.get(family, family) in load_training_calibration().families


def training_band(family: str, metric: str, moe: bool, seen: bool = False) -> tuple[float, float, str, int] | None:
    """(low factor, high factor, group, rows) for a training prediction, or None without band data. `seen`: a
    row of a publication the fit used (in-sample, TRAIN_WIDEN); otherwise a new source's (TRAIN_UNSEEN_WIDEN)."""
    return _lookup(_doc().get("training_bands", {}), training_keys(family, metric, moe),
                   TRAIN_WIDEN if seen else TRAIN_UNSEEN_WIDEN)


def fitted_training_publications() -> frozenset[str]:
    """The publications (source URLs without their fragment) of the training rows the shipped fit used."""
    return frozenset(_doc().get("fitted_training_publications") or [])


def describe_training(lo: float, hi: float, group: str, n: int) -> str:
    fam, kind, arch = group.split("|")
    what = ", ".join(x for x in (fam if fam != "*" else "", arch if arch != "*" else "") if x)
    return (f"typically {100 * (lo - 1):+.0f} %..{100 * (hi - 1):+.0f} % ({'training ' + kind}"
            f"{', ' + what if what else ''}; {n} validated rows; the error on sources the fit has not seen)")


def fit_training_bands() -> dict[str, Any]:
    """Residual quantiles per training regime from validating the shipped training file."""

    from stockpile.calibration.fit_inference import publication_of
    from stockpile.calibration.fit_training import default_rows
    from stockpile.calibration.training import Case, is_fitted, predict_training_rows, prepare_rows
    rows = default_rows()
    cases = prepare_rows(rows)
    res: dict[str, list[float]] = defaultdict(list)
    for case, rec in zip(cases, predict_training_rows(rows, cases=cases)):
        if not isinstance(case, Case) or rec["status"] != "ok" or not rec["measured"]:
            continue
        r = float(np.log(rec["measured"] / rec["predicted"]))
        for k in training_keys(case.job.chip.family, case.metric, case.job.model.is_moe):
            res[k].append(r)
    return {"training_bands": _quantiles(res),
            "fitted_training_publications": sorted({publication_of(r) for r, c in zip(rows, cases)
                                                    if isinstance(c, Case) and is_fitted(c)}),
            "validated_training_chips": sorted({c.job.chip.id for c in cases if isinstance(c, Case)}),
            "validated_training_families": sorted({c.job.chip.family for c in cases if isinstance(c, Case)}),
            "validated_training_model_families": sorted({model_family(c.job.model) for c in cases
                                                         if isinstance(c, Case)})}


def fit_bands() -> dict[str, Any]:
    """Residual quantiles per regime from validating the shipped inference files."""
    from stockpile.calibration.fit_inference import default_files
    from stockpile.calibration.inference import Batch, Prepared, prepare_file
    from stockpile.perf.calibration import load_calibration
    cal = load_calibration()
    res: dict[str, list[float]] = defaultdict(list)
    chips: set[str] = set()
    pubs: set[str] = set()
    models: set[str] = set()
    for path in default_files():
        _, _, preps = prepare_file(path)
        ps = [p for p in preps if isinstance(p, Prepared)]
        chips.update(p.case.chip for p in ps)
        models.update(model_family(p.model) for p in ps)
        pubs.update(p.case.publication for p in ps if p.case.publication)
        for p, v in zip(ps, Batch(ps).run(cal)):
            if not (np.isfinite(v) and v > 0):
                continue
            c = p.case
            r = float(np.log(c.measured / v))
            for k in keys(p.engine_key, p.chip.family, c.metric,
                          load_kind(c.concurrency, c.request_rate, c.num_requests)):
                res[k].append(r)
    out = _quantiles(res)
    return {"validated_chips": sorted(chips), "fitted_publications": sorted(pubs),
            "validated_model_families": sorted(models),
            "meta": {"what": "10th/90th percentiles of log(measured/predicted) per regime "
                             "(engine|chip family|metric|load), from validate on the shipped files (in sample; "
                             f"shrunk toward the broader group and widened x {WIDEN} when read)",
                     "files": [Path(p).name for p in default_files()], "min_rows": MIN_ROWS,
                     "calibration": cal.meta.get("fitted")},
            "bands": out}


if __name__ == "__main__":
    from stockpile.atomic import write_yaml_atomic
    dest = Path(str(resources.files("stockpile") / "data" / "calibration" / "bands.yaml"))
    doc = fit_bands()
    doc.update(fit_training_bands())
    write_yaml_atomic(dest, doc, header="# Written by `python -m stockpile.calibration.bands`; see "
                                        "stockpile/calibration/bands.py\n")
    print(f"wrote {dest}: {len(doc['bands'])} inference regimes, {len(doc['training_bands'])} training regimes")
