"""How far a chip figure that is not a published datasheet value may be from the truth.

The catalog marks such figures in their note (ESTIMATE, UPPER BOUND, PRESS, ...; data/chips/*.yaml). Each mark
stands for a range of the true value relative to the catalogued one, (low, high) as multipliers. A bound fixes
one side: the true value of an UPPER BOUND is at most the figure, of a LOWER BOUND at least. Several marks on one
figure: the widest of their ranges, then the bound's side. These ranges are the project's stated assumptions, not
measurements; docs/inference-model.md lists them, and every prediction that rests on such a figure says so and
carries the effect in its band (perf/inference.py, search/serving.py, search/training.py).
"""
from __future__ import annotations

from stockpile.catalog.chips import Chip, Figure

# mark -> (low, high) multiplier of the true value over the catalogued figure
MARK_RANGES: dict[str, tuple[float, float]] = {
    "PLACEHOLDER": (0.5, 2.0),       # a stand-in: nothing published
    "LOW CONFIDENCE": (0.67, 1.5),   # an aggregator's or a secondary figure nobody confirms
    "ESTIMATE": (0.8, 1.25),         # reasoned from a neighbouring part or a rule
    "UNVERIFIED": (0.8, 1.25),       # a relay of a vendor statement not found at its origin
    "PRESS": (0.85, 1.15),           # a press figure quoting the vendor
    "DERIVED": (0.9, 1.1),           # computed from published figures with a stated assumption
    "UPPER BOUND": (0.7, 1.0),       # a ceiling (e.g. an export-rule threshold the part was designed under)
    "LOWER BOUND": (1.0, 1.5),       # a floor (e.g. backed out of a published benchmark)
}
ESTIMATE_MARKS = tuple(MARK_RANGES)
# the figures a performance prediction uses: capacity, and the speeds whose range moves the prediction
USED_FIGURES = ("memory_gb", "memory_bw_gbs", "bf16_tflops", "fp16_tflops", "fp8_tflops", "fp4_tflops",
                "scaleup_bw_gbs", "scaleout_gbps")
SPEED_FIGURES = ("memory_bw_gbs", "fp32_tflops", "tf32_tflops", "bf16_tflops", "fp16_tflops", "fp8_tflops",
                 "int8_tops", "int4_tops", "fp4_tflops", "scaleup_bw_gbs", "scaleout_gbps")


def marks(fig: Figure | None) -> list[str]:
    """The estimate marks a figure's note carries (none: a published value)."""
    note = ((fig.note if fig is not None else None) or "").upper()
    return [m for m in ESTIMATE_MARKS if m in note]


def figure_range(fig: Figure | None) -> tuple[float, float]:
    """(low, high): where the true value may lie, as multipliers of the catalogued one; (1, 1) for a published
    value."""
    ms = marks(fig)
    if not ms:
        return 1.0, 1.0
    lo = min(MARK_RANGES[m][0] for m in ms)
    hi = max(MARK_RANGES[m][1] for m in ms)
    if "UPPER BOUND" in ms:
        hi = 1.0
    if "LOWER BOUND" in ms:
        lo = 1.0
    return lo, hi


def estimated_figures(chip: Chip) -> list[str]:
    """A sentence for each figure a prediction rests on that the catalog marks as an estimate, bound or derived."""
    out = []
    for name in USED_FIGURES:
        fig = getattr(chip, name, None)
        if fig is not None and marks(fig):
            note = fig.note or ""
            label = note.split(": ")[0]
            # a note led by its marks ("ESTIMATE (UPPER BOUND): ...") is named by them; any other by its first clause
            head = label if label.isupper() else note.split(";")[0]
            unsaid = [m.lower() for m in marks(fig) if m not in head.upper()]   # marks stated later in the note
            kinds = f" ({', '.join(unsaid)})" if unsaid else ""
            out.append(f"{chip.id} {name} = {fig.value:g} is not a published figure{kinds}: {head}")
    return out


def uncertain_speeds(chip: Chip) -> dict[str, tuple[float, float]]:
    """The speed figures of `chip` whose range is not a point: name -> (low, high)."""
    out = {}
    for name in SPEED_FIGURES:
        fig = getattr(chip, name, None)
        if fig is not None and fig.value > 0 and (r := figure_range(fig)) != (1.0, 1.0):
            out[name] = r
    return out


def chip_at_edge(chip: Chip, side: str) -> Chip:
    """`chip` with every uncertain speed figure at the end of its range: side "slow" (each at its low end) or
    "fast" (its high end). Capacity stays as catalogued (it decides what fits, not how fast)."""
    if side not in ("slow", "fast"):
        raise ValueError("side is 'slow' or 'fast'")
    upd = {}
    for name, (lo, hi) in uncertain_speeds(chip).items():
        fig = getattr(chip, name)
        upd[name] = Figure(value=fig.value * (lo if side == "slow" else hi), source=fig.source,
                           note=f"{side} end of the figure's range ({fig.note})")
    return chip.model_copy(update=upd) if upd else chip

