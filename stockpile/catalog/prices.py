"""What a chip-hour costs, and so what a million tokens cost.

Prices live in data/prices/chips.yaml (purchase per accelerator and rental per GPU-hour, each with source and
date; `--prices FILE` in the same format overrides or adds). The cost of one GPU-hour is, by `basis`:

    rental  the rental price;
    tco     purchase / (depreciation_years x 8,760 h)
            + TDP x host_overhead x average_power_fraction x PUE x electricity price;
    auto    rental where a rental price is known, else tco.

The TCO defaults are the planner's sourced defaults (fleet/scenario.py Costs: 5-year depreciation, all-in power
1.82 x TDP at 73.5 % average draw, PUE 1.3, 9.1 US cents/kWh). A chip without a price source gets no number,
and says so. Cost per million tokens = cost per GPU-hour x GPUs / (tokens/s x 3,600) x 1e6 at the predicted
throughput (the utilisation the estimate assumes).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stockpile.catalog.chips import Chip
from stockpile.errors import InputError

HOURS_PER_YEAR = 8760.0
# TCO defaults: the fleet planner's sourced cost defaults (fleet/scenario.py Costs)
DEPRECIATION_YEARS = 5.0
HOST_OVERHEAD = 1.82
AVERAGE_POWER_FRACTION = 0.735
PUE = 1.3
USD_PER_KWH = 0.091

Basis = Literal["auto", "rental", "tco"]


class Price(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    value: float = Field(gt=0)
    low: float | None = Field(default=None, gt=0)
    high: float | None = Field(default=None, gt=0)
    date: str = Field(min_length=4)
    source: str = Field(min_length=3)
    note: str | None = None


class ChipPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")
    purchase_usd: Price | None = None
    rental_usd_per_hour: Price | None = None


class GpuHourCost(BaseModel):
    usd_per_gpu_hour: float
    basis: str                  # "rental" or "tco"
    text: str                   # how it was computed, with the dates
    sources: list[str]


_overlay: list[dict[str, ChipPrice]] = []


def _parse(doc: object, where: str) -> dict[str, ChipPrice]:
    if not isinstance(doc, dict):
        raise InputError("prices", f"{where}: a mapping of chip id -> {{purchase_usd, rental_usd_per_hour}}")
    out: dict[str, ChipPrice] = {}
    for cid, rec in doc.items():
        try:
            out[str(cid).lower()] = ChipPrice.model_validate(rec)
        except ValidationError as exc:
            e = exc.errors()[0]
            loc = ".".join(str(p) for p in e.get("loc", ()))
            raise InputError("prices", f"{where}: {cid}.{loc}: {e.get('msg')} (each price is "
                                       "{value: > 0, date, source})") from None
    return out


@cache
def _shipped() -> dict[str, ChipPrice]:
    path = resources.files("stockpile") / "data" / "prices" / "chips.yaml"
    return _parse(yaml.safe_load(path.read_text()), "data/prices/chips.yaml")


def load_price_file(path: str | Path) -> dict[str, ChipPrice]:
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError("prices", f"cannot read {p}: {exc}") from None
    return _parse(doc, p.name)


@contextmanager
def extra_prices(prices: dict[str, ChipPrice]) -> Iterator[None]:
    """Look these prices up before the shipped ones inside the block (`--prices FILE`)."""
    _overlay.append(prices)
    try:
        yield
    finally:
        _overlay.pop()


def chip_price(chip_id: str) -> ChipPrice | None:
    key = chip_id.lower()
    for layer in reversed(_overlay):
        if key in layer:
            return layer[key]
    return _shipped().get(key)


def gpu_hour_cost(chip: Chip, basis: Basis = "auto") -> GpuHourCost | None:
    """The cost of one GPU-hour of `chip`, or None where no price source exists for the basis asked."""
    price = chip_price(chip.id)
    if price is None:
        return None
    rent = price.rental_usd_per_hour
    if basis in ("auto", "rental") and rent is not None:
        rng = f" (range {rent.low:g}-{rent.high:g})" if rent.low and rent.high else ""
        return GpuHourCost(usd_per_gpu_hour=rent.value, basis="rental",
                           text=f"rental {rent.value:g} USD/GPU-h{rng}, {rent.date}", sources=[rent.source])
    buy = price.purchase_usd
    if basis == "rental" or buy is None or chip.tdp_w is None:
        return None
    capex = buy.value / (DEPRECIATION_YEARS * HOURS_PER_YEAR)
    kw = chip.tdp_w.value / 1000.0 * HOST_OVERHEAD * AVERAGE_POWER_FRACTION * PUE
    power = kw * USD_PER_KWH
    return GpuHourCost(usd_per_gpu_hour=capex + power, basis="tco",
                       text=(f"TCO: {buy.value:,.0f} USD ({buy.date}) over {DEPRECIATION_YEARS:g} years = "
                             f"{capex:.3f} USD/h + power {kw:.2f} kW all-in x {USD_PER_KWH} USD/kWh = {power:.3f} USD/h"),
                       sources=[buy.source, chip.tdp_w.source])


def usd_per_million(usd_per_gpu_hour: float, gpus: int, tokens_per_s: float) -> float | None:
    """Cost of a million tokens at `tokens_per_s` on `gpus` GPUs costing `usd_per_gpu_hour` each."""
    if tokens_per_s <= 0 or usd_per_gpu_hour < 0:
        return None
    return usd_per_gpu_hour * gpus / (tokens_per_s * 3600.0) * 1e6


class ApiPrice(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    usd_per_million_input: float = Field(ge=0)
    usd_per_million_output: float = Field(ge=0)
    date: str = Field(min_length=4)
    source: str = Field(min_length=3)
    note: str | None = None


_api_overlay: list[dict[str, ApiPrice]] = []


def _parse_api(doc: object, where: str) -> dict[str, ApiPrice]:
    if not isinstance(doc, dict):
        raise InputError("api_prices", f"{where}: a mapping of model id -> {{usd_per_million_input, "
                                       "usd_per_million_output, date, source}")
    out: dict[str, ApiPrice] = {}
    for mid, rec in doc.items():
        try:
            out[str(mid).lower()] = ApiPrice.model_validate(rec)
        except ValidationError as exc:
            e = exc.errors()[0]
            loc = ".".join(str(p) for p in e.get("loc", ()))
            raise InputError("api_prices", f"{where}: {mid}.{loc}: {e.get('msg')}") from None
    return out


@cache
def _shipped_api() -> dict[str, ApiPrice]:
    path = resources.files("stockpile") / "data" / "prices" / "apis.yaml"
    return _parse_api(yaml.safe_load(path.read_text()), "data/prices/apis.yaml")


def load_api_price_file(path: str | Path) -> dict[str, ApiPrice]:
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError("api_prices", f"cannot read {p}: {exc}") from None
    return _parse_api(doc, p.name)


@contextmanager
def extra_api_prices(prices: dict[str, ApiPrice]) -> Iterator[None]:
    _api_overlay.append(prices)
    try:
        yield
    finally:
        _api_overlay.pop()


def api_price(model_id: str) -> ApiPrice | None:
    key = model_id.lower()
    for layer in reversed(_api_overlay):
        if key in layer:
            return layer[key]
    return _shipped_api().get(key)


def break_even(usd_per_hour: float, input_tps: float, output_tps: float, api: ApiPrice) -> dict[str, float] | None:
    """Self-hosting (usd_per_hour for the deployment, whatever its load) against the API: the share of the
    deployment's capacity at which both cost the same, and that volume in tokens a day. Above it self-hosting is
    cheaper; a share above 1 means this deployment never is."""
    api_per_hour_full = (input_tps * api.usd_per_million_input + output_tps * api.usd_per_million_output) \
        * 3600.0 / 1e6
    if api_per_hour_full <= 0:
        return None
    u = usd_per_hour / api_per_hour_full
    return {"utilisation": round(u, 4), "output_tokens_per_day": round(u * output_tps * 86400.0),
            "input_tokens_per_day": round(u * input_tps * 86400.0)}
