"""Model sizing that counts inference: Chinchilla as re-fitted by Besiroglu et al. 2024, minimised over
training plus lifetime inference compute as in Sardana et al. 2024 ("Beyond Chinchilla-Optimal", ICML 2024).

    L(N, D) = E + A / N^alpha + B / D^beta                       (Hoffmann et al. 2022, eq. 2)
    total compute  C = 6 N D + 2 N D_inf                           (training + inference, N = active params)

Target loss L*:  minimise 6 N D(N) + 2 N D_inf with D(N) = (B / (L* - E - A / N^alpha))^(1/beta).
Budget C:        minimise L(N, (C - 2 N D_inf) / (6 N)).
Without inference both reduce to the closed form N_opt = G (C/6)^(beta/(alpha+beta)), G = (alpha A/(beta B))^(1/(alpha+beta)).

MoE: compute uses active parameters; the loss law sees a dense-equivalent size k * N_active (k is the user's
assumption, 1 by default, which rates an MoE like a dense model of its active size: conservative). Total
parameters = N_active / active_ratio. The constants are read from fleet_facts.csv, with their source.
"""
from __future__ import annotations

import csv
import math
import re
from functools import cache
from importlib import resources

from pydantic import BaseModel

from stockpile.errors import DataError, InputError

_LAWS = {"besiroglu2024": "Besiroglu et al. 2024", "hoffmann2022": "Chinchilla (Hoffmann 2022)"}


class ScalingLaw(BaseModel):
    name: str
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str

    def loss(self, n: float, d: float) -> float:
        """L(N, D) = E + A N^-alpha + B D^-beta."""
        return self.E + self.A / n ** self.alpha + self.B / d ** self.beta

    def tokens_for_loss(self, n: float, target: float) -> float:
        """D such that L(N, D) = target; inf when N alone cannot reach it."""
        gap = target - self.E - self.A / n ** self.alpha
        return math.inf if gap <= 0 else (self.B / gap) ** (1.0 / self.beta)

    def chinchilla_params(self, train_flop: float) -> float:
        """Compute-optimal N for training compute C = 6ND (Hoffmann et al. 2022, eq. 4)."""
        a, b = self.alpha, self.beta
        g = (a * self.A / (b * self.B)) ** (1.0 / (a + b))
        return g * (train_flop / 6.0) ** (b / (a + b))


@cache
def scaling_law(name: str = "besiroglu2024") -> ScalingLaw:
    """Constants of a scaling-law fit from stockpile/data/measurements/fleet_facts.csv (row 'scaling')."""
    key = name.strip().lower()
    if key not in _LAWS:
        raise InputError("law", f"unknown scaling law '{name}'; choose {', '.join(_LAWS)}")
    path = resources.files("stockpile") / "data" / "measurements" / "fleet_facts.csv"
    for row in csv.DictReader(path.read_text().splitlines()):
        if row["group"] == "scaling" and row["fact"].startswith(_LAWS[key]):
            consts = dict(re.findall(r"(A|B|alpha|beta)=([0-9.]+)", row["unit"]))
            if set(consts) != {"A", "B", "alpha", "beta"}:
                break
            return ScalingLaw(name=key, E=float(row["value"]), A=float(consts["A"]), B=float(consts["B"]),
                              alpha=float(consts["alpha"]), beta=float(consts["beta"]), source=row["source_url"])
    raise DataError(f"fleet_facts.csv has no parsable '{_LAWS[key]}' row (E in value; A=, B=, alpha=, beta= in unit)")


class SizingPoint(BaseModel):
    active_params_b: float
    total_params_b: float
    tokens: float
    tokens_per_param: float
    training_flop: float
    inference_flop: float
    total_flop: float
    loss: float


class SizingResult(BaseModel):
    law: str
    source: str
    mode: str                      # "target_loss" or "budget"
    inference_tokens: float
    optimal: SizingPoint
    chinchilla: SizingPoint        # training-compute-optimal for the same loss (or the same budget)
    saving_vs_chinchilla: float    # fraction of total compute saved by counting inference
    within_budget: bool | None = None
    notes: list[str]


def _golden(f, lo: float, hi: float, iters: int = 200) -> float:
    """Minimise a unimodal f on [lo, hi] (golden-section search, in log space by the caller)."""
    from scipy.optimize import minimize_scalar
    res = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10, "maxiter": iters})
    return float(res.x)


def _point(law: ScalingLaw, n_active: float, d: float, d_inf: float, k: float, ratio: float) -> SizingPoint:
    train, infer = 6.0 * n_active * d, 2.0 * n_active * d_inf
    return SizingPoint(active_params_b=n_active / 1e9, total_params_b=n_active / ratio / 1e9, tokens=d,
                       tokens_per_param=d / n_active, training_flop=train, inference_flop=infer,
                       total_flop=train + infer, loss=law.loss(k * n_active, d))


def _chinchilla_for_loss(L: ScalingLaw, target: float, d_inf: float, k: float, ratio: float) -> SizingPoint:
    """The training-compute-optimal (N, D) reaching `target` (inference ignored when choosing, counted after)."""
    n_min = (L.A / (target - L.E)) ** (1.0 / L.alpha) / k

    def train_only(logn: float) -> float:
        m = math.exp(logn)
        return math.log(6.0 * m * L.tokens_for_loss(k * m, target))
    lo, hi = math.log(n_min * (1 + 1e-9)), math.log(n_min * 1e6)
    nc = math.exp(_golden(train_only, lo, hi))
    return _point(L, nc, L.tokens_for_loss(k * nc, target), d_inf, k, ratio)


def size(*, compute_budget_flop: float | None = None, target_loss: float | None = None, inference_tokens: float = 0.0,
         law: str = "besiroglu2024", moe_active_ratio: float | None = None,
         moe_dense_equivalent: float = 1.0) -> SizingResult:
    """Active parameters and training tokens minimising total compute for a target loss (Sardana et al. 2024),
    or the lowest loss within a total compute budget; with the Chinchilla-optimal point for comparison."""
    L = scaling_law(law)
    if compute_budget_flop is None and target_loss is None:
        raise InputError("target_loss", "give a target loss or a compute budget")
    if inference_tokens < 0:
        raise InputError("inference_tokens", f"must be >= 0, got {inference_tokens}")
    if compute_budget_flop is not None and compute_budget_flop <= 0:
        raise InputError("compute_budget_flop", f"must be positive, got {compute_budget_flop}")
    ratio = moe_active_ratio if moe_active_ratio is not None else 1.0
    if not 0 < ratio <= 1:
        raise InputError("moe_active_ratio", f"active / total parameters must be in (0, 1], got {ratio}")
    if moe_dense_equivalent <= 0:
        raise InputError("moe_dense_equivalent", f"must be positive, got {moe_dense_equivalent}")
    k, d_inf = moe_dense_equivalent, inference_tokens
    notes = [f"{L.name}: L = {L.E} + {L.A}/N^{L.alpha} + {L.B}/D^{L.beta} ({L.source})",
             ("training 6ND and inference 2N FLOP per token with N = active parameters (Sardana et al. 2024, "
             "arXiv 2401.00448)")]
    if moe_active_ratio is not None:
        notes.append(f"MoE: loss law applied to {k:g} x active parameters (user assumption); total = active / {ratio}")
    if target_loss is not None:
        if target_loss <= L.E:
            raise InputError("target_loss", f"{target_loss} is at or below the irreducible loss E = {L.E} of {L.name}")
        n_min = (L.A / (target_loss - L.E)) ** (1.0 / L.alpha) / k     # active params where D -> infinity

        def total(logn: float) -> float:
            n = math.exp(logn)
            return math.log(6.0 * n * L.tokens_for_loss(k * n, target_loss) + 2.0 * n * d_inf)
        lo, hi = math.log(n_min * (1 + 1e-9)), math.log(n_min * 1e6)
        n = math.exp(_golden(total, lo, hi))
        best = _point(L, n, L.tokens_for_loss(k * n, target_loss), d_inf, k, ratio)

        chin = _chinchilla_for_loss(L, target_loss, d_inf, k, ratio)
        within = None if compute_budget_flop is None else best.total_flop <= compute_budget_flop
        mode = "target_loss"
    else:
        C = float(compute_budget_flop)  # type: ignore[arg-type]
        n_hi = C / (2.0 * d_inf) if d_inf > 0 else C / 6.0

        def loss(logn: float) -> float:
            n = math.exp(logn)
            d = (C - 2.0 * n * d_inf) / (6.0 * n)
            return L.loss(k * n, d) if d > 0 else 1e9
        n = math.exp(_golden(loss, math.log(1e3), math.log(n_hi * (1 - 1e-9))))
        best = _point(L, n, (C - 2.0 * n * d_inf) / (6.0 * n), d_inf, k, ratio)
        chin = _chinchilla_for_loss(L, best.loss, d_inf, k, ratio)
        within, mode = True, "budget"
    saving = 1.0 - best.total_flop / chin.total_flop if chin.total_flop > 0 else 0.0
    return SizingResult(law=L.name, source=L.source, mode=mode, inference_tokens=d_inf, optimal=best,
                        chinchilla=chin, saving_vs_chinchilla=saving, within_budget=within, notes=notes)
