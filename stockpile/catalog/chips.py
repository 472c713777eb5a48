"""Accelerator catalog: one validated record per chip, every figure with its source.

Records live in ``stockpile/data/chips/*.yaml`` in human units (GB, GB/s, TFLOP/s, Gbit/s, W);
the properties on :class:`Chip` expose SI units (bytes, bytes/s, FLOP/s) for the models.
"""
from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stockpile.errors import DataError, InputError, MissingFigureError, UnknownNameError
from stockpile.yaml_lines import line_map

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


# ------------------------------------------------------------------ user chips, looked up before the catalog
# A stack of layers (``extra_chips`` blocks, innermost last); the innermost layer that has an id wins, then the
# shipped catalog. The version rises on every enter and exit, so a cache keyed by (chip id, overlay_version())
# never serves a figure from another overlay.
def shipped_vendors() -> frozenset[str]:
    """Vendors of the shipped catalog's chips (a user chip file's vendor may be new)."""
    return frozenset(c.vendor for c in _catalog().values())


_overlay: list[dict[str, Chip]] = []
_overlay_lock = threading.Lock()
_overlay_counter = 0


def _key(chip_id: str) -> str:
    return chip_id.strip().lower()


def overlay_version() -> int:
    """Rises (never repeats) each time an ``extra_chips`` block is entered or left; 0 before any."""
    return _overlay_counter


@contextmanager
def extra_chips(chips: Iterable[Chip]) -> Iterator[list[Chip]]:
    """Look these chips up before the shipped catalog inside the block (case-insensitive ids; a chip with a
    catalog id replaces that record). Blocks nest, the inner one winning; leaving a block restores what was."""
    global _overlay_counter
    layer: dict[str, Chip] = {}
    for chip in chips:
        if not isinstance(chip, Chip):
            raise TypeError(f"extra_chips takes Chip records, got {type(chip).__name__}")
        key = _key(chip.id)
        if not key:
            raise InputError("chip", "a user chip needs a non-empty id")
        layer[key] = chip if chip.id == key else chip.model_copy(update={"id": key})
    with _overlay_lock:
        _overlay.append(layer)
        _overlay_counter += 1
    try:
        yield list(layer.values())
    finally:
        with _overlay_lock:
            for i in range(len(_overlay) - 1, -1, -1):     # this block's own layer, even if left out of order
                if _overlay[i] is layer:
                    del _overlay[i]
                    break
            _overlay_counter += 1


def _merged() -> dict[str, Chip]:
    cat = _catalog()
    if not _overlay:
        return cat
    merged = dict(cat)
    for layer in list(_overlay):
        merged.update(layer)
    return merged


def list_chips() -> list[Chip]:
    """Every chip: the shipped catalog in its order (user chips replacing records with their id), then the
    user chips the catalog lacks."""
    return list(_merged().values())


def get_chip(chip_id: str) -> Chip:
    """Case-insensitive lookup, user chips (``extra_chips``) first; an unknown id lists the closest known ids."""
    key = _key(chip_id)
    for layer in reversed(list(_overlay)):
        if key in layer:
            return layer[key]
    cat = _catalog()
    if key in cat:
        return cat[key]
    merged = _merged()
    short = _shorthand(chip_id, merged) or _device_name(chip_id, merged)
    if short is not None:
        return short
    # "NVIDIA H20": the suggestions come from the product name ("h20-96gb, h20-141gb"), as the vendor's words
    # match no catalog id
    product = _SIZE.sub(" ", _VENDOR_WORDS.sub(" ", chip_id)).strip(" -_")
    raise UnknownNameError("chip", chip_id, merged.keys(), hint="see `stockpile catalog chips`",
                           match=product if product and re.search(r"[a-z]", product, re.I) else None)


# words a driver or a vendor puts around the product name ("NVIDIA H100 80GB HBM3", "AMD Instinct MI300X",
# "Tesla T4", "NVIDIA GeForce RTX 4090"): not part of any catalog id
_VENDOR_WORDS = re.compile(r"\b(nvidia|amd|intel|huawei|tesla|geforce|instinct|quadro|hbm\d?e?|gddr\d+x?|"
                           r"graphics|accelerator)\b", re.I)
_SIZE = re.compile(r"\b(\d+)\s*gb\b", re.I)


def _device_name(chip_id: str, chips: dict[str, Chip]) -> Chip | None:
    """The chip a device name as nvidia-smi, rocm-smi or a vendor page prints it names: the product without the
    vendor's words, its memory size choosing among the product's parts ("NVIDIA H100 80GB HBM3" is the 80 GB SXM
    module, "NVIDIA A100 80GB PCIe" the PCIe card). None where that leaves no single chip."""
    name = _VENDOR_WORDS.sub(" ", chip_id)
    if name.strip() == chip_id.strip():
        return None
    size = _SIZE.search(name)
    key = _compact(_SIZE.sub(" ", name))
    if len(key) < 2:
        return None
    found = _candidates(key, chips)
    if size is not None:
        found = {i: c for i, c in found.items() if _fits_size(c, int(size.group(1)))}
    return _the_one(found)


def _fits_size(chip: Chip, gb: int) -> bool:
    """The chip's id or name carries this memory size (80 GB: h100-sxm-80gb)."""
    return bool(re.search(rf"(?<!\d){gb}\s*gb", f"{chip.id} {chip.name}", re.I))


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


# form factors of a vendor's flagship module, which a bare product name means (_shorthand)
MODULE_FORMS = ("sxm", "oam")


def _shorthand(chip_id: str, chips: dict[str, Chip]) -> Chip | None:
    """The one chip a shorthand names: "B200", "MI300X", "gb200", aiconfigurator's "h200_sxm", "Ascend910B" (whole
    leading parts of the id, or the start of the catalog name, or whole parts after the id's brand word ("910B",
    "P800"), ignoring case, spaces, dashes and underscores). None
    where no chip matches, or more than one and no single one is the SXM or OAM module ("H100": SXM 80 or 96 GB;
    "H20": 96 or 141 GB), so that the caller lists the candidates instead of guessing."""
    key = _compact(chip_id)
    return _the_one(_candidates(key, chips)) if len(key) >= 2 else None


def _candidates(key: str, chips: dict[str, Chip]) -> dict[str, Chip]:
    """The chips a compacted name may mean (see _shorthand)."""
    # whole leading parts of an id ("l4" is l4-24gb, not also l40s-48gb; a cut-off id such as "b200-sxm-18" is a
    # typo to refuse), else the start of the catalog name ("A100-SXM4-80GB" is the A100 SXM4 80GB)
    parts = {c.id: c for c in chips.values()
             if key in {_compact("".join(c.id.split("-")[:k])) for k in range(1, c.id.count("-") + 2)}}
    found = parts or {c.id: c for c in chips.values() if _compact(c.name).startswith(key)}
    # else the model number without its brand word ("910B" is ascend-910b-64gb, "P800" kunlun-p800-96gb)
    # (a bare number such as "6000" stays ambiguous: it needs the letters of a model number)
    return found or {c.id: c for c in chips.values() if re.search(r"[a-z]", key) and re.search(r"[0-9]", key)
                     and key in {_compact("".join(c.id.split("-")[1:k])) for k in range(2, c.id.count("-") + 2)}}


def _the_one(found: dict[str, Chip]) -> Chip | None:
    """The single chip among candidates: a bare name means the module part where it has exactly one ("H200" is the
    SXM part, not the H200 NVL card); "H100" (80 and 96 GB SXM) stays ambiguous."""
    if len(found) > 1:
        module = [c for c in found.values() if c.form_factor in MODULE_FORMS]
        found = {module[0].id: module[0]} if len(module) == 1 else found
    return next(iter(found.values())) if len(found) == 1 else None


_FIGURE_FIELDS: tuple[str, ...] = tuple(
    name for name, f in Chip.model_fields.items() if Figure in get_args(f.annotation))


def figure_fields() -> tuple[str, ...]:
    """Names of the :class:`Chip` fields that hold a sourced :class:`Figure` (memory_gb, bf16_tflops, ...)."""
    return _FIGURE_FIELDS


_RECORD_FIX = ("every figure is a record {value: NUMBER, source: 'URL or document it was read from'}, as in "
               "stockpile/data/chips/*.yaml; a chip needs id, vendor, name and family")


def load_chip_file(path: str | Path) -> list[Chip]:
    """Chips from a YAML list in the catalog's own format (``--chip-file``); use them with ``extra_chips``.

    Errors (InputError) name the file, the record (index and id), the field and its line, and the fix."""
    p = Path(path)
    field = f"chip file {p.name}"
    if not p.is_file():
        raise InputError(field, f"file not found: {p}")
    text = p.read_text()
    try:
        records = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark else ""
        raise InputError(field, f"not valid YAML: {getattr(exc, 'problem', exc)}{at}") from None
    if not isinstance(records, list) or not records:
        got = "empty" if records is None or records == [] else f"a {type(records).__name__}"
        raise InputError(field, f"must be a YAML list of chips (one '- id: ...' record each), but it is {got}; "
                         + _RECORD_FIX)
    lines = line_map(text)

    def line_of(loc: tuple[Any, ...]) -> str:
        for n in range(len(loc), 0, -1):
            if loc[:n] in lines:
                return f" (line {lines[loc[:n]]})"
        return ""

    chips: list[Chip] = []
    seen: dict[str, int] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InputError(field, f"chip {i}{line_of((i,))}: is a {type(rec).__name__}, not a mapping; " + _RECORD_FIX)
        rid = rec.get("id")
        name = f"chip {i} ({rid})" if rid else f"chip {i}"
        if not isinstance(rid, str) or not rid.strip():
            raise InputError(field, f"{name}{line_of((i,))}: id: give the chip's id as text, e.g. id: mychip-64gb")
        try:
            chip = Chip.model_validate(rec)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = tuple(err["loc"])
            where = ".".join(map(str, loc)) or "record"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing" and loc and loc[-1] == "source":
                msg = "missing: a figure without its source is a guess"
            elif err["type"] == "extra_forbidden":
                msg = f"unknown field; chip fields are {', '.join(Chip.model_fields)}"
            more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise InputError(field, f"{name}{line_of((i,) + loc)}: {where}: {msg}{more}; {_RECORD_FIX}") from None
        key = _key(chip.id)
        if key in seen:
            raise InputError(field, f"{name}{line_of((i, 'id'))}: id: '{chip.id}' is also chip {seen[key]}; ids must be "
                             "unique in a chip file")
        seen[key] = i
        chips.append(chip.model_copy(update={"id": key}) if chip.id != key else chip)
    return chips


_DIE_FIELDS = ("memory_gb", "memory_bw_gbs", "fp32_tflops", "tf32_tflops", "bf16_tflops", "fp16_tflops",
               "fp8_tflops", "int8_tops", "int4_tops", "fp4_tflops", "tdp_w")


def per_die(chip: "Chip", dies: int) -> "Chip":
    """A multi-die package seen as `dies` devices (Ascend 910C: SGLang ranks count dies)."""
    upd: dict[str, Any] = {"id": f"{chip.id}/die"}
    for name in _DIE_FIELDS:
        fig = getattr(chip, name)
        if fig is not None:
            upd[name] = Figure(value=fig.value / dies, source=fig.source, note=f"per die (1/{dies} package)")
    return chip.model_copy(update=upd)
