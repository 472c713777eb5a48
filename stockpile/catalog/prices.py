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
from importlib import resources
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

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
T = TypeVar("T", bound=BaseModel)


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


class _Book(Generic[T]):
    """A price list: records of one pydantic type keyed by a lower-cased id, shipped in a YAML data file, with
    user files (`--prices`, `--api-prices`) looked up first inside an `overlay` block."""

    def __init__(self, record: type[T], data_file: str, field: str, shape: str) -> None:
        self.record, self.data_file, self.field, self.shape = record, data_file, field, shape
        self._layers: list[dict[str, T]] = []
        self._shipped: dict[str, T] | None = None

    def parse(self, doc: object, where: str) -> dict[str, T]:
        if not isinstance(doc, dict):
            raise InputError(self.field, f"{where}: a mapping of id -> {self.shape}")
        out: dict[str, T] = {}
        for key, rec in doc.items():
            try:
                out[str(key).lower()] = self.record.model_validate(rec)
            except ValidationError as exc:
                e = exc.errors()[0]
                loc = ".".join(str(p) for p in e.get("loc", ()))
                raise InputError(self.field, f"{where}: {key}.{loc}: {e.get('msg')} ({self.shape})") from None
        return out

    def shipped(self) -> dict[str, T]:
        if self._shipped is None:
            path = resources.files("stockpile") / "data" / "prices" / self.data_file
            self._shipped = self.parse(yaml.safe_load(path.read_text()), f"data/prices/{self.data_file}")
        return self._shipped

    def load_file(self, path: str | Path) -> dict[str, T]:
        p = Path(path)
        try:
            doc = yaml.safe_load(p.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise InputError(self.field, f"cannot read {p}: {exc}") from None
        return self.parse(doc, p.name)

    @contextmanager
    def overlay(self, records: dict[str, T]) -> Iterator[None]:
        self._layers.append(records)
        try:
            yield
        finally:
            self._layers.pop()

    def get(self, key: str) -> T | None:
        k = key.lower()
        for layer in reversed(self._layers):
            if k in layer:
                return layer[k]
        return self.shipped().get(k)


CHIP_PRICES = _Book(ChipPrice, "chips.yaml", "prices",
                    "{purchase_usd, rental_usd_per_hour}, each {value: > 0, date, source}")


def load_price_file(path: str | Path) -> dict[str, ChipPrice]:
    return CHIP_PRICES.load_file(path)


def extra_prices(prices: dict[str, ChipPrice]) -> Any:
    """Look these prices up before the shipped ones inside the block (`--prices FILE`)."""
    return CHIP_PRICES.overlay(prices)


def chip_price(chip_id: str) -> ChipPrice | None:
    return CHIP_PRICES.get(chip_id)


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


def token_split(usd_per_hour: float, input_share: float, input_tps: float, output_tps: float
                ) -> tuple[float | None, float | None]:
    """(USD per million input tokens, USD per million output tokens): a deployment costing `usd_per_hour` spends
    `input_share` of its device time on prompts (prefill) and the rest on generating, and serves `input_tps` and
    `output_tps` tokens/s."""
    share = min(max(input_share, 0.0), 1.0)
    per = lambda usd_h, tps: None if tps <= 0 else usd_h / (tps * 3600.0) * 1e6  # noqa: E731
    return per(usd_per_hour * share, input_tps), per(usd_per_hour * (1.0 - share), output_tps)


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


API_PRICES = _Book(ApiPrice, "apis.yaml", "api_prices",
                   "{usd_per_million_input, usd_per_million_output, date, source}")


def load_api_price_file(path: str | Path) -> dict[str, ApiPrice]:
    """A user's API price list (`--api-prices`); each model is resolved like `--model` (aliases and variants of a
    catalogued model find it), and one the catalog does not know is an error naming the closest ids."""
    from stockpile.catalog.models import resolve_model_id
    from stockpile.errors import UnknownNameError
    out: dict[str, ApiPrice] = {}
    for key, rec in API_PRICES.load_file(path).items():
        try:
            canonical = resolve_model_id(key)
        except UnknownNameError as exc:
            raise InputError("api_prices", f"{Path(path).name}: {exc}") from None
        out[key] = out[canonical.lower()] = rec
    return out


def extra_api_prices(prices: dict[str, ApiPrice]) -> Any:
    return API_PRICES.overlay(prices)


def api_price(model_id: str) -> ApiPrice | None:
    return API_PRICES.get(model_id)


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


def token_cost(chip: Chip, gpus: int, output_tps: float, total_tps: float, basis: str = "auto",
               model_id: str | None = None, input_share: float | None = None) -> dict[str, Any]:
    """USD per million output tokens (all cost on output) and per million tokens (input + output), or why not;
    with `input_share` (the device time spent on prompts) the cost split by token kind (`usd_per_mtok_input`,
    `usd_per_mtok_output`); and, where the model has a public API price, the break-even volume of self-hosting."""
    if basis not in ("auto", "rental", "tco"):
        raise InputError("cost_basis", f"'{basis}' is not auto, rental or tco")
    c = gpu_hour_cost(chip, basis)  # type: ignore[arg-type]
    if c is None:
        return {"missing": f"no {'rental ' if basis == 'rental' else ''}price source for {chip.id} "
                           "(give one with --prices FILE)"}
    per_output = usd_per_million(c.usd_per_gpu_hour, gpus, output_tps)
    if per_output is None:
        # a load so light that no token is served in the run's time (a request rate of 1e-300/s): a GPU-hour has a
        # price, a token none
        return {"missing": f"no output tokens per second at this load, so no cost per token (the GPU-hour costs "
                           f"{c.usd_per_gpu_hour:.2f} USD, {c.text})", "usd_per_gpu_hour": round(c.usd_per_gpu_hour, 4),
                "basis": c.basis, "how": c.text, "sources": c.sources}
    out: dict[str, Any] = {
        "usd_per_gpu_hour": round(c.usd_per_gpu_hour, 4), "basis": c.basis,
        "usd_per_million_output_tokens": _round(per_output),
        "usd_per_million_tokens": _round(usd_per_million(c.usd_per_gpu_hour, gpus, total_tps)),
        "how": c.text, "sources": c.sources}
    if input_share is not None:
        i, o = token_split(c.usd_per_gpu_hour * gpus, input_share, total_tps - output_tps, output_tps)
        out.update(input_share=round(input_share, 4), usd_per_mtok_input=_round(i), usd_per_mtok_output=_round(o))
    api = api_price(model_id) if model_id else None
    if api is not None:
        be = break_even(c.usd_per_gpu_hour * gpus, total_tps - output_tps, output_tps, api)
        out["api"] = {"usd_per_million_input": api.usd_per_million_input,
                      "usd_per_million_output": api.usd_per_million_output, "date": api.date,
                      "source": api.source, "break_even": be}
    return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)
