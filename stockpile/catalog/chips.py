"""Accelerator catalog: one validated record per chip, every figure with its source.

Records live in ``stockpile/data/chips/*.yaml`` in human units (GB, GB/s, TFLOP/s, Gbit/s, W);
the properties on :class:`Chip` expose SI units (bytes, bytes/s, FLOP/s) for the models.
"""
from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stockpile.errors import DataError, MissingFigureError, UnknownNameError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml when available

Dtype = Literal["fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp4"]
DTYPES: tuple[str, ...] = ("fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")
BITS = {"fp32": 32, "tf32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4, "fp4": 4}
BYTES = {k: v / 8 for k, v in BITS.items()}

# ECCN 3A090 thresholds (BIS interim final rule, Oct-2023, 88 FR 73458; kept in the Jan-2025 rule).
TPP_3A090A = 4800.0
TPP_3A090A_PD = 1600.0
PD_3A090A = 5.92
TPP_3A090B = 2400.0
PD_3A090B = 1.6
TPP_3A090B_MAX_PD_HIGH = 4800.0


class Figure(BaseModel):
    """A number with the URL it was read from and an optional note (estimate, derived, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    value: float
    source: str = Field(min_length=8)
    note: str | None = None

    @field_validator("value")
    @classmethod
    def _non_negative(cls, v: float) -> float:
        if v < 0:
            raise ValueError("must be >= 0")
        return v


class ExportStatus(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    status: str
    note: str | None = None
    source: str | None = None


_PEAK_FIELDS = {
    "fp32": "fp32_tflops", "tf32": "tf32_tflops", "bf16": "bf16_tflops", "fp16": "fp16_tflops",
    "fp8": "fp8_tflops", "int8": "int8_tops", "int4": "int4_tops", "fp4": "fp4_tflops",
}


class Chip(BaseModel):
    """One accelerator. Human units in fields; SI units through properties."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    vendor: str
    name: str
    family: str
    form_factor: str | None = None
    year: int | None = None
    memory_gb: Figure | None = None
    memory_bw_gbs: Figure | None = None
    fp32_tflops: Figure | None = None
    tf32_tflops: Figure | None = None
    bf16_tflops: Figure | None = None
    fp16_tflops: Figure | None = None
    fp8_tflops: Figure | None = None
    int8_tops: Figure | None = None
    int4_tops: Figure | None = None
    fp4_tflops: Figure | None = None
    scaleup_bw_gbs: Figure | None = None
    scaleup_domain: Figure | None = None
    scaleout_gbps: Figure | None = None
    tdp_w: Figure | None = None
    die_area_mm2: Figure | None = None
    price_usd: Figure | None = None
    export: ExportStatus | None = None
    notes: str | None = None

    # --- figures the models need, in SI units; a missing one is an error, never a guess ---
    def _need(self, field: str) -> float:
        fig = getattr(self, field)
        if fig is None:
            raise MissingFigureError(
                f"chip '{self.id}' has no sourced {field}; add it to stockpile/data/chips with its source")
        return float(fig.value)

    @property
    def memory_bytes(self) -> float:
        """Capacity in bytes. Vendors' HBM "GB" are binary (an "80 GB" H100 shows 81,559 MiB), so GiB."""
        return self._need("memory_gb") * 2**30

    @property
    def mem_bw(self) -> float:
        """HBM/GDDR bandwidth, bytes/s."""
        return self._need("memory_bw_gbs") * 1e9

    @property
    def scaleup_bw(self) -> float:
        """Scale-up link bandwidth per direction per chip, bytes/s (PCIe where no fabric)."""
        return self._need("scaleup_bw_gbs") * 1e9

    @property
    def scaleup_size(self) -> int:
        return int(self.scaleup_domain.value) if self.scaleup_domain else 1

    @property
    def scaleout_bw(self) -> float:
        """Scale-out NIC bandwidth per chip per direction, bytes/s."""
        return self._need("scaleout_gbps") * 1e9 / 8

    @property
    def tdp(self) -> float:
        return self._need("tdp_w")

    def has_native(self, dtype: str) -> bool:
        """True if the chip's tensor units run `dtype` natively (a sourced peak exists)."""
        fig = getattr(self, _PEAK_FIELDS[dtype], None)
        return fig is not None and fig.value > 0

    def peak_flops(self, dtype: str) -> float:
        """Dense tensor peak for GEMMs in `dtype`, FLOP/s.

        int4/fp4 weights without native units run at the 8/16-bit rate (weight-only dequant)."""
        order = {"fp4": ("fp4", "fp8", "bf16", "fp16"), "int4": ("int4", "int8", "fp8", "bf16", "fp16"),
                 "fp8": ("fp8", "bf16", "fp16"), "int8": ("int8", "fp8", "bf16", "fp16"),
                 "bf16": ("bf16", "fp16"), "fp16": ("fp16", "bf16"), "fp32": ("tf32", "fp32", "bf16")}
        for d in order.get(dtype, (dtype,)):
            fig = getattr(self, _PEAK_FIELDS[d], None)
            if fig is not None and fig.value > 0:
                return fig.value * 1e12
        raise MissingFigureError(f"chip '{self.id}' has no sourced tensor peak for {dtype} (or a 16-bit fallback), so "
                                 "its performance cannot be predicted; add the figure with its source in "
                                 "stockpile/data/chips")

    @property
    def tpp(self) -> float | None:
        """Total Processing Performance (ECCN 3A090): max over formats of dense TOPS x bit length.

        TF32 is left out: its operands carry 19 significant bits, and the 16-bit rate bounds it anyway."""
        vals = [fig.value * BITS[d] for d, f in _PEAK_FIELDS.items()
                if d != "tf32" and (fig := getattr(self, f)) is not None and fig.value > 0]
        return max(vals) if vals else None

    @property
    def performance_density(self) -> float | None:
        """TPP per mm² of die area (3A090), when the die area is sourced."""
        tpp = self.tpp
        if tpp is None or self.die_area_mm2 is None or self.die_area_mm2.value <= 0:
            return None
        return tpp / self.die_area_mm2.value

    @property
    def eccn_3a090(self) -> str:
        """Classification by the 3A090 thresholds, from the specs (not typed in)."""
        return classify_3a090(self.tpp, self.performance_density)

    def sources(self) -> dict[str, str]:
        out = {}
        for name in type(self).model_fields:
            fig = getattr(self, name)
            if isinstance(fig, Figure):
                out[name] = fig.source
        if self.export and self.export.source:
            out["export"] = self.export.source
        return out


def classify_3a090(tpp: float | None, pd: float | None) -> str:
    """ECCN 3A090.a / .b test (BIS, 15 CFR 774 Supp. 1, as amended Oct-2023).

    3A090.a: TPP >= 4800, or TPP >= 1600 and PD >= 5.92.
    3A090.b: TPP >= 2400 and 1.6 <= PD < 5.92, or TPP >= 1600 and 3.2 <= PD < 5.92 (non-datacenter rules
    differ; we report the datacenter reading)."""
    if tpp is None:
        return "unknown (no sourced peak)"
    if tpp >= TPP_3A090A:
        return "3A090.a"
    if pd is None:
        return "below 3A090.a TPP; 3A090.b depends on die area (unsourced)" if tpp >= TPP_3A090A_PD else "not 3A090"
    if tpp >= TPP_3A090A_PD and pd >= PD_3A090A:
        return "3A090.a"
    if (tpp >= TPP_3A090B and pd >= PD_3A090B) or (tpp >= TPP_3A090A_PD and pd >= 3.2):
        return "3A090.b"
    return "not 3A090"


@cache
def _catalog() -> dict[str, Chip]:
    chips: dict[str, Chip] = {}
    root = resources.files("stockpile") / "data" / "chips"
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if not entry.name.endswith((".yaml", ".yml")):
            continue
        records = yaml.load(entry.read_text(), Loader=_Loader) or []
        for i, rec in enumerate(records):
            try:
                chip = Chip.model_validate(rec)
            except ValidationError as exc:
                err = exc.errors()[0]
                raise DataError(f"{entry.name} record {i} ({rec.get('id', '?')}): "
                                f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
            if chip.id in chips:
                raise DataError(f"{entry.name}: duplicate chip id '{chip.id}'")
            chips[chip.id] = chip
    return chips


def list_chips() -> list[Chip]:
    return list(_catalog().values())


def get_chip(chip_id: str) -> Chip:
    """Case-insensitive lookup; an unknown id lists the closest known ids."""
    cat = _catalog()
    key = chip_id.strip().lower()
    if key in cat:
        return cat[key]
    raise UnknownNameError("chip", chip_id, cat.keys(), hint="see `stockpile catalog chips`")
