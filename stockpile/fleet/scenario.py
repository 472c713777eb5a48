"""Scenario file for ``stockpile plan``: the pydantic v2 schema, YAML loading with line numbers, and checks.

A scenario names the stock (chip, count, acquisition month, cluster), attrition by age, procurement options,
policy events, the training programme, inference workloads, costs, the horizon and the uncertainty the Monte
Carlo samples. ``scenario_json_schema()`` is what ``stockpile plan --schema`` prints. Defaults cite their
sources (``stockpile/data/measurements/fleet_facts.csv`` holds the facts with URLs).

Errors name the field as a path (``stock[2].count``) and, for YAML files, the line it sits on.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stockpile.catalog.chips import Figure
from stockpile.errors import InputError
from stockpile.fleet.months import month_index, month_name, parse_month

__all__ = ["Scenario", "month_index", "month_name", "scenario_json_schema"]


MAX_UNCERTAIN_EVENTS = 6       # 2^6 = 64 policy worlds in the scenario tree (CONTRACTS.md)
# bounded work per plan: beyond these a plan's MILP outgrows a few GB on one machine (bench/plan_scale.py solves
# 40 chip types, 200 workloads, 36 months and 8 worlds in ~1 GB); split the fleet into scenarios instead
MAX_CLUSTERS, MAX_STOCK_ROWS, MAX_OPTIONS, MAX_EVENTS, MAX_WORKLOADS = 64, 100_000, 200, 64, 1_000


def _month(v: Any) -> Any:
    return parse_month(v)


def _count(v: Any) -> Any:
    """Token and FLOP counts may be written 15T, 1.5e12 or 4k."""
    if isinstance(v, str):
        from stockpile.units import parse_count
        try:
            return parse_count(v)
        except InputError as exc:
            raise ValueError(str(exc).split(": ", 1)[-1]) from None
    return v


Month = Annotated[str, BeforeValidator(_month), Field(pattern=r"^\d{4}-\d{2}$", examples=["2025-04"])]
Count = Annotated[float, BeforeValidator(_count)]


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Range(_Base):
    """A uniform range [low, high]."""

    low: float
    high: float

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        return self


class Cluster(_Base):
    """A site: its facility power limit and, optionally, its own PUE and electricity price."""

    id: str = Field(min_length=1)
    power_mw: float | None = Field(default=None, gt=0, description="facility power available to accelerators, MW "
                                   "(accelerators x all-in power x PUE must stay below it); blank: no limit")
    pue: float | None = Field(default=None, ge=1.0, description="power usage effectiveness; blank: costs.pue")
    power_usd_per_kwh: float | None = Field(default=None, ge=0, description="blank: costs.power_usd_per_kwh")


class StockItem(_Base):
    """Chips on hand: one chip type in one cluster, bought in one month."""

    chip: str = Field(description="accelerator id (stockpile catalog chips)")
    count: int = Field(ge=0)
    acquired: Month | None = Field(default=None, description="acquisition month (age drives attrition); or age_months")
    age_months: int | None = Field(default=None, ge=0, description="age at the scenario start")
    cluster: str = "default"


def _list_or_csv(schema: dict[str, Any]) -> None:
    """JSON Schema of `stock`: the list, or a CSV file path."""
    listed = {k: schema.pop(k) for k in ("type", "items") if k in schema}
    schema["anyOf"] = [listed, {"type": "string", "description": "CSV file: chip,count,age_months,cluster"}]


class AgeRate(_Base):
    age_years: float = Field(ge=0, description="the rate applies from this age until the next entry")
    annual_rate: float = Field(ge=0, lt=1, description="permanent failures per chip-year, fraction")


class Attrition(_Base):
    """Permanent chip failures by age (a step curve), with optional per-chip multipliers and retirement."""

    curve: list[AgeRate] = Field(
        default_factory=lambda: [AgeRate(age_years=0, annual_rate=0.04)],
        description="default 4 %/yr for H100-class GPUs (range 2.5-6 %; fleet_facts.csv 'Annual permanent "
                    "GPU failure rate', https://research-viewer.pages.dev/orbital-ai-datacenters-3/pages/"
                    "terrestrial-gpu-failure-rate/)")
    chip_multiplier: dict[str, float] = Field(default_factory=dict)
    retire_age_years: float | None = Field(default=None, gt=0, description="chips retire at this age; accounting lives "
                                           "are 5-6 years (Microsoft, Alphabet, Meta, Amazon 10-K/10-Q)")


class Procurement(_Base):
    """A way to buy more chips: price, lead time, when it can be ordered and how many per month."""

    chip: str
    cluster: str | None = Field(default=None, description="where deliveries go; blank: the first cluster")
    price_usd: float = Field(ge=0, description="per chip, all-in (server share included)")
    lead_time_months: int = Field(default=0, ge=0, description="order month to usable month")
    available_from: Month | None = Field(default=None, description="first order month; blank: the start")
    available_until: Month | None = Field(default=None, description="last order month; blank: open")
    max_per_month: float = Field(ge=0, description="chips that can be ordered per month")
    max_total: float | None = Field(default=None, ge=0)
    delay_mean_months: float | None = Field(default=None, ge=0, description="Monte Carlo: mean extra delivery delay "
                                            "(Poisson); blank: uncertainty.procurement_delay_mean_months")
    fill_rate: Range | None = Field(default=None, description="Monte Carlo: fraction of an order that arrives; blank: "
                                    "uncertainty.fill_rate")


class ChipRule(_Base):
    """Chips selected by their export-control figures instead of by id (ECCN 3A090 style thresholds)."""

    tpp_at_least: float | None = Field(default=None, gt=0, description="total processing performance (TPP = "
                                       "dense TOPS x bit length, max over formats, as 3A090 defines it) at or "
                                       "above this; 3A090.a uses 4,800")
    performance_density_at_least: float | None = Field(default=None, gt=0, description="TPP per mm2 of die at "
                                                       "or above this (chips whose die area is unsourced are not "
                                                       "selected, and the plan says so)")

    @model_validator(mode="after")
    def _one(self) -> ChipRule:
        if (self.tpp_at_least is None) == (self.performance_density_at_least is None):
            raise ValueError("give exactly one of tpp_at_least or performance_density_at_least")
        return self


class PolicyEvent(_Base):
    """An export-control or domestic-policy change for one chip type (or every chip a rule selects) from a month.

    no_purchase: deliveries from that month on stop (orders in the pipeline are lost: NVIDIA's April-2025 H20
    write-off); allow_purchase: deliveries may resume (or start) from that month; no_use: chips on hand may no
    longer be used, and may not be rented. Events apply in date order, a later one overriding an earlier one for
    the same chip. An event with 0 < probability < 1 splits the plan into policy worlds; decisions before it is
    `announced` are the same in the worlds with and without it."""

    chip: str | None = Field(default=None, description="accelerator id; or give rule")
    rule: ChipRule | None = Field(default=None, description="select chips by their figures instead of by id")
    date: Month
    effect: Literal["no_purchase", "allow_purchase", "no_use"] = "no_purchase"
    probability: float = Field(default=1.0, ge=0, le=1)
    announced: Month | None = Field(default=None, description="when the event becomes known (default: its date); "
                                    "decisions before it are shared by the worlds with and without it")
    date_sd_months: float = Field(default=0.0, ge=0, description="Monte Carlo: normal jitter of the date (and of "
                                  "the announcement with it), months")
    note: str | None = None

    @model_validator(mode="after")
    def _target(self) -> PolicyEvent:
        if (self.chip is None) == (self.rule is None):
            raise ValueError("give exactly one of chip (an id) or rule (e.g. {tpp_at_least: 4800})")
        if self.announced is not None and month_index(self.announced) > month_index(self.date):
            raise ValueError(f"announced {self.announced} is after the event's date {self.date}: an event is "
                             "known by the month it takes effect; move announced to or before the date")
        return self

    @property
    def known_month(self) -> str:
        return self.announced or self.date


class Generation(_Base):
    """One model generation to train: size, token budget (or compute), deadline, chips."""

    name: str = Field(min_length=1)
    model: str | None = Field(default=None, description="catalog model id giving params_b / active_params_b")
    params_b: float | None = Field(default=None, gt=0, description="total parameters, billions")
    active_params_b: float | None = Field(default=None, gt=0, description="active parameters per token (MoE), billions")
    tokens: Count | None = Field(default=None, gt=0, description="training tokens (15T, 1.5e13)")
    compute_flop: Count | None = Field(default=None, gt=0, description="training compute; tokens = C / (6 N_active)")
    earliest_start: Month | None = None
    deadline: Month = Field(description="the run must finish by the end of this month")
    min_chips: int = Field(ge=1)
    max_chips: int = Field(ge=1)
    sizes: list[int] | None = Field(default=None, description="chip counts to consider; blank: up to 4 steps from "
                                    "min_chips to max_chips")
    chips: list[str] | None = Field(default=None, description="chip types it may run on (one type, one cluster); "
                                    "blank: any in the stock or procurement")
    clusters: list[str] | None = None
    after: str | None = Field(default=None, description="name of a generation that must finish first")
    mfu: float | None = Field(default=None, gt=0, le=1)
    late_penalty_usd_per_month: float | None = Field(default=None, ge=0)
    miss_penalty_usd: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Generation:
        if self.max_chips < self.min_chips:
            raise ValueError(f"max_chips ({self.max_chips}) is below min_chips ({self.min_chips})")
        if self.tokens is None and self.compute_flop is None:
            raise ValueError("give tokens (the token budget) or compute_flop")
        if self.model is None and self.params_b is None and self.active_params_b is None:
            raise ValueError("give model (a catalog id) or params_b / active_params_b")
        if self.earliest_start and month_index(self.deadline) < month_index(self.earliest_start):
            raise ValueError(f"deadline {self.deadline} is before earliest_start {self.earliest_start}")
        return self


class LadderRung(_Base):
    """The first rung of a training ladder: a model size and token budget, or a compute budget."""

    params_b: float | None = Field(default=None, gt=0, description="total parameters, billions")
    active_params_b: float | None = Field(default=None, gt=0, description="active parameters (MoE), billions")
    tokens: Count | None = Field(default=None, gt=0)
    compute_flop: Count | None = Field(default=None, gt=0, description="training compute, FLOP (6 N_active D)")

    @model_validator(mode="after")
    def _given(self) -> LadderRung:
        sized = self.params_b is not None or self.active_params_b is not None
        if self.compute_flop is None and not (sized and self.tokens is not None):
            raise ValueError("give compute_flop, or params_b (and active_params_b for an MoE) with tokens")
        return self


class Ladder(_Base):
    """Generations to come: rung k needs compute_growth^k times the first rung's compute, one rung at a time,
    each finished within every_months of its start (CONTRACTS.md, training.ladder)."""

    first: LadderRung | None = Field(default=None, description="blank: compute_growth x the largest generation "
                                     "of the scenario, or x DeepSeek-V3's 6 x 37B x 14.8T FLOP (fleet_facts.csv "
                                     "'DeepSeek-V3 pre-training tokens') when it names none")
    compute_growth: float = Field(default=4.5, gt=1, description="compute of one generation over the previous: "
                                  "4.5x a year, Epoch AI's frontier training compute growth (4-5x/yr; "
                                  "fleet_facts.csv 'Epoch AI: training compute of frontier AI models growth "
                                  "rate')")
    every_months: int = Field(default=12, ge=1, le=120, description="cadence: a rung starts at most this often and "
                              "must finish within this many months of its start (one generation a year at the "
                              "growth rate above)")
    chips: list[str] | None = Field(default=None, description="chip types the ladder may train on; blank: those "
                                    "with a training rate")


class Training(_Base):
    mfu: float = Field(default=0.35, gt=0, le=1, description="model FLOPs utilisation for the MFU training rate; 0.35 "
                       "sits below Llama 3 405B's 38 % BF16 MFU on 16k H100 (arXiv 2407.21783) and MegaScale's "
                       "55 % (arXiv 2402.15627)")
    mfu_by_chip: dict[str, float] = Field(default_factory=dict)
    precision: Literal["bf16", "fp8"] = "bf16"
    goodput: float | None = Field(default=None, gt=0, le=1, description="effective training time fraction after "
                                  "failures and restarts; blank: the training model's goodput at each run's size "
                                  "(Young/Daly checkpointing at Llama 3's interruption rate, arXiv 2407.21783)")
    late_penalty_usd_per_month: float = Field(default=1e9, ge=0, description="cost per month a run ends after its "
                                              "deadline (a policy weight, not a price)")
    miss_penalty_usd: float = Field(default=1e10, ge=0, description="cost of a generation not trained in the horizon")
    generations: list[Generation] = Field(default_factory=list, max_length=200)
    ladder: Ladder | None = Field(default=None, description="how many more generations the stock trains "
                                  "(generations_trainable); blank: the default ladder")


class ChipPair(_Base):
    """Prefill on one chip type and decode on another (disaggregated serving across two pools of one cluster)."""

    prefill: str = Field(min_length=1, description="chip id of the prefill pool")
    decode: str = Field(min_length=1, description="chip id of the decode pool")
    throughput_per_gpu: float | None = Field(default=None, gt=0, allow_inf_nan=False, description="the user's "
                                             "measured output tokens/s per GPU of the pair (prefill and decode "
                                             "GPUs both counted) at the workload's SLO; blank: the mixed "
                                             "serving search (search --prefill-chips/--decode-chips)")
    prefill_share: float | None = Field(default=None, gt=0, lt=1, description="fraction of the pair's GPUs "
                                        "that are prefill chips; blank: the mixed search's best configuration")

    @model_validator(mode="after")
    def _two_chips(self) -> ChipPair:
        if self.prefill.strip().lower() == self.decode.strip().lower():
            raise ValueError(f"prefill and decode are both {self.prefill}: a pair needs two chip types (one chip "
                             "type already serves disaggregated through the serving search)")
        return self


class Workload(_Base):
    """An inference product: model, traffic and its growth, request shape and SLO."""

    name: str = Field(min_length=1)
    model: str = Field(description="catalog model id (Hugging Face repo id)")
    tokens_per_day: Count | None = Field(default=None, gt=0, description="input + output tokens per day at start")
    requests_per_day: Count | None = Field(default=None, gt=0, description="alternative to tokens_per_day")
    monthly_growth: float = Field(default=0.0, gt=-1, description="traffic growth per month, fraction (0.1 = +10 %)")
    growth_sd: float | None = Field(default=None, ge=0, description="Monte Carlo: sd of monthly_growth; blank: "
                                    "uncertainty.demand_growth_sd")
    start: Month | None = Field(default=None, description="launch month; blank: the scenario start")
    isl: float = Field(gt=0, description="mean input tokens per request")
    osl: float = Field(gt=0, description="mean output tokens per request")
    ttft_ms: float | None = Field(default=None, gt=0)
    tpot_ms: float | None = Field(default=None, gt=0)
    peak_to_mean: float = Field(default=1.0, ge=1.0, description="capacity is sized for the peak hour; DeepSeek's "
                                "inference fleet peaked at 278 nodes vs 226.75 average (1.23; open-infra-index)")
    chips: list[str] | None = Field(default=None, description="chip types that may serve it; blank: all")
    weight_dtype: str | None = None
    throughput_per_gpu: dict[str, float] = Field(default_factory=dict, description="the user's measured output "
                                                 "tokens/s per GPU at this workload's SLO, per chip id; used for "
                                                 "those chips instead of the serving search")
    chip_pairs: list[ChipPair] = Field(default_factory=list, max_length=64, description="chip pairs that may "
                                       "serve it disaggregated, prefill on one type and decode on the other "
                                       "(both pools in one cluster); the plan uses a pair where it pays")
    daily_profile: list[float] | None = Field(default=None, min_length=24, max_length=24, description="24 "
                                              "relative hourly loads (any scale); default: a raised cosine with "
                                              "this workload's peak_to_mean, trough floored at zero, mean 1")

    @model_validator(mode="after")
    def _traffic(self) -> Workload:
        if (self.tokens_per_day is None) == (self.requests_per_day is None):
            raise ValueError("give exactly one of tokens_per_day or requests_per_day")
        for chip, v in self.throughput_per_gpu.items():
            if not v > 0 or v != v or v == float("inf"):
                raise ValueError(f"throughput_per_gpu.{chip} must be a positive number of output tokens/s, got {v}")
        if self.daily_profile is not None:
            if any(not (x >= 0) or x == float("inf") for x in self.daily_profile) or max(self.daily_profile) <= 0:
                raise ValueError("daily_profile needs 24 finite values >= 0, not all zero")
        return self


class Rental(_Base):
    chip: str
    usd_per_gpu_hour: float = Field(gt=0)
    max_gpus: float = Field(ge=0, description="most GPUs that can be rented in any month")


_UNSOURCED_TDP = "scenario chips section (plain tdp_w, no source given)"
_ABOVE_ZERO = ("memory_gb", "memory_bw_gbs", "tdp_w", "scaleup_domain")


def _number_or_record(schema: dict[str, Any]) -> None:
    """JSON Schema of a chip figure: a {value, source} record, or a number (with the chip's source)."""
    schema.setdefault("anyOf", []).insert(0, {"type": "number", "minimum": 0})


def _fig(what: str) -> Any:
    return Field(default=None, json_schema_extra=_number_or_record, description=f"{what}: {{value, source, note}} "
                 "as in stockpile/data/chips (a plain number takes the chip's source)")


class ChipOverride(_Base):
    """A chip's figures given in the scenario, with their sources (a missing figure is an error, not a guess).

    Figures use the catalog's format (``memory_gb: {value: 96, source: "..."}``) and replace the catalog's;
    with figures, an id the catalog lacks is a chip of its own (give vendor, name, family). ``power_w`` is the
    all-in power per accelerator the planner uses instead of TDP x costs.host_overhead."""

    power_w: float | None = Field(default=None, gt=0, description="all-in power per accelerator (host, network), W")
    source: str | None = Field(default=None, description="where power_w (and plain-number figures) come from")
    vendor: str | None = Field(default=None, min_length=1, description="for a chip the catalog lacks; blank: the id")
    name: str | None = Field(default=None, min_length=1, description="for a chip the catalog lacks; blank: the id")
    family: str | None = Field(default=None, min_length=1, description="for a chip the catalog lacks; blank: user")
    memory_gb: Figure | None = _fig("HBM capacity, GB")
    memory_bw_gbs: Figure | None = _fig("memory bandwidth, GB/s")
    fp32_tflops: Figure | None = _fig("dense FP32 peak, TFLOP/s")
    tf32_tflops: Figure | None = _fig("dense TF32 tensor peak, TFLOP/s")
    bf16_tflops: Figure | None = _fig("dense BF16 tensor peak, TFLOP/s")
    fp16_tflops: Figure | None = _fig("dense FP16 tensor peak, TFLOP/s")
    fp8_tflops: Figure | None = _fig("dense FP8 tensor peak, TFLOP/s")
    int8_tops: Figure | None = _fig("dense INT8 tensor peak, TOP/s")
    int4_tops: Figure | None = _fig("dense INT4 tensor peak, TOP/s")
    fp4_tflops: Figure | None = _fig("dense FP4 tensor peak, TFLOP/s")
    scaleup_bw_gbs: Figure | None = _fig("scale-up bandwidth per direction per chip, GB/s")
    scaleup_domain: Figure | None = _fig("chips in one scale-up domain")
    scaleout_gbps: Figure | None = _fig("scale-out NIC bandwidth per chip, Gbit/s")
    tdp_figure: Figure | None = Field(default=None, alias="tdp_w", json_schema_extra=_number_or_record,
                                      description="TDP, W: {value, source} or a plain number (then source: "
                                      "applies, if given)")
    die_area_mm2: Figure | None = _fig("die area, mm2 (performance density)")
    price_usd: Figure | None = _fig("price per chip, USD")

    @property
    def tdp_w(self) -> float | None:
        """TDP in W, when given."""
        return None if self.tdp_figure is None else self.tdp_figure.value

    @model_validator(mode="before")
    @classmethod
    def _plain_numbers(cls, data: Any) -> Any:
        """A plain number takes the chip's `source:` (a bare tdp_w keeps working without one, as before)."""
        if not isinstance(data, dict):
            return data
        from stockpile.catalog.chips import figure_fields
        src = data.get("source")
        out = dict(data)
        for name in figure_fields():
            v = out.get(name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if isinstance(src, str) and len(src.strip()) >= 8:
                out[name] = {"value": v, "source": src}
            elif name == "tdp_w":
                out[name] = {"value": v, "source": _UNSOURCED_TDP}
        return out

    @field_validator("memory_gb", "memory_bw_gbs", "fp32_tflops", "tf32_tflops", "bf16_tflops", "fp16_tflops",
                     "fp8_tflops", "int8_tops", "int4_tops", "fp4_tflops", "scaleup_bw_gbs", "scaleup_domain",
                     "scaleout_gbps", "tdp_figure", "die_area_mm2", "price_usd", mode="before")
    @classmethod
    def _figure(cls, v: Any, info: ValidationInfo) -> Any:
        name = "tdp_w" if info.field_name == "tdp_figure" else str(info.field_name)
        if v is None or isinstance(v, Figure):
            return v
        if isinstance(v, bool) or not isinstance(v, dict):
            raise ValueError(f"give the figure with its source, {{value: NUMBER, source: 'URL or document'}} "
                             f"(or a plain number and the chip's source:), not {v!r}")
        if "source" not in v:
            raise ValueError("has no source: write {value: NUMBER, source: 'URL or document it was read from'}; "
                             "a figure without a source is a guess")
        val = v.get("value")
        if isinstance(val, bool):
            raise ValueError(f"value {val!r} is not a number")
        if isinstance(val, (int, float)):
            if not math.isfinite(val):
                raise ValueError(f"value {val!r} is not a finite number")
            if val < 0:
                raise ValueError(f"value {val:g} is negative; give the chip's {name} (0 or more)")
            if val == 0 and name in _ABOVE_ZERO:
                raise ValueError(f"value 0 is not a {name}; give a number above 0")
        return v

    def figures(self) -> dict[str, Figure]:
        """The figures given, by :class:`~stockpile.catalog.chips.Chip` field name (tdp_w included)."""
        out: dict[str, Figure] = {}
        for name in type(self).model_fields:
            fig = getattr(self, name)
            if isinstance(fig, Figure):
                out["tdp_w" if name == "tdp_figure" else name] = fig
        return out


class Costs(_Base):
    power_usd_per_kwh: float = Field(default=0.091, ge=0, description="default: US average 9.1 c/kWh (EIA, in "
                                     "fleet_facts.csv); China data centres pay 0.03-0.06 USD/kWh")
    pue: float = Field(default=1.3, ge=1, description="China's target PUE for new large data centres (MIIT 2022-2025)")
    host_overhead: float = Field(default=1.82, ge=1, description="all-in power per accelerator / TDP: DGX H100 "
                                 "maximum 10.2 kW for 8 x 700 W GPUs (NVIDIA spec via supercluster.blog)")
    average_power_fraction: float = Field(default=0.735, gt=0, le=1, description="average / maximum draw: DGX H100 "
                                          "typical 7.5 kW of 10.2 kW max")
    depreciation_years: float = Field(default=5.0, gt=0, description="procured chips are charged over this life "
                                      "(Meta 5-5.5, Amazon 5, Microsoft/Alphabet 6 years)")
    unmet_penalty_usd_per_mtok: float = Field(default=100.0, ge=0, description="cost of one million output tokens "
                                              "not served; high (DeepSeek-R1 lists 2.19 USD/M output) so that "
                                              "the plan buys or rents before it drops demand")
    capex_budget_usd: float | None = Field(default=None, ge=0, description="cap on procurement spend in the horizon")
    objective: Literal["energy", "tco"] = Field(default="energy", description="energy: idle chips cost nothing "
                                                "(only running costs count); tco: also straight-line depreciation "
                                                "of every chip on hand over depreciation_years and, for an idle "
                                                "chip, its market rental as the opportunity forgone")
    rental: list[Rental] = Field(default_factory=list)


class Uncertainty(_Base):
    """Distributions the Monte Carlo samples (seeded, reproducible)."""

    seed: int = 0
    demand_growth_sd: float = Field(default=0.02, ge=0, description="sd of each workload's monthly growth rate, "
                                    "held for the whole horizon in a sample")
    demand_level_sd: float = Field(default=0.1, ge=0, description="lognormal sigma of the starting traffic")
    demand_correlation: float = Field(default=0.5, ge=0, le=1, description="share of demand noise common to workloads")
    attrition_sigma: float = Field(default=0.4, ge=0, description="lognormal sigma of the failure-rate multiplier "
                                   "(the sourced range 2.5-6 %/yr is about +-0.45 in log)")
    procurement_delay_mean_months: float = Field(default=1.0, ge=0, description="mean extra delivery delay (Poisson)")
    fill_rate: Range = Field(default_factory=lambda: Range(low=0.7, high=1.0), description="fraction of "
                             "ordered chips delivered; ByteDance got <30k of >100k Ascend 910B ordered in 2024")
    goodput: Range = Field(default_factory=lambda: Range(low=0.85, high=0.97), description="training goodput "
                           "range (Llama 3 >90 %, ByteRobust 97 %)")


class Scenario(_Base):
    """A fleet-planning scenario (input of ``stockpile plan``)."""

    name: str = "scenario"
    description: str | None = None
    start: Month
    horizon_months: int = Field(default=24, ge=1, le=120)
    clusters: list[Cluster] = Field(default_factory=list, max_length=MAX_CLUSTERS)
    stock: list[StockItem] = Field(default_factory=list, json_schema_extra=_list_or_csv, max_length=MAX_STOCK_ROWS,
                                   description="chips on hand: a list, or the path of a CSV file with columns "
                                   "chip,count,age_months,cluster (acquired as YYYY-MM may replace age_months; "
                                   "cluster optional), relative to the scenario file's folder")
    attrition: Attrition = Field(default_factory=Attrition)
    procurement: list[Procurement] = Field(default_factory=list, max_length=MAX_OPTIONS)
    policy_events: list[PolicyEvent] = Field(default_factory=list, max_length=MAX_EVENTS)
    training: Training = Field(default_factory=Training)
    inference: list[Workload] = Field(default_factory=list, max_length=MAX_WORKLOADS)
    chips: dict[str, ChipOverride] = Field(default_factory=dict)
    costs: Costs = Field(default_factory=Costs)
    uncertainty: Uncertainty = Field(default_factory=Uncertainty)
    serving_reserve: float = Field(default=0.05, ge=0, lt=1, description="headroom the plan keeps above inference demand "
                                   "(a shortfall in it costs a tenth of unmet demand): 5 % spare capacity kept "
                                   "99.9 % job availability on Delta's 1,056 A100/H100 (Cui et al. 2025)")
    runway_tolerance: float = Field(default=0.01, ge=0, lt=1, description="a month 'meets demand' when unmet output "
                                    "tokens are at most this fraction of demand")

    @property
    def start_index(self) -> int:
        return month_index(self.start)


def scenario_json_schema() -> dict[str, Any]:
    """The published JSON Schema of the scenario file (``stockpile plan --schema``)."""
    return Scenario.model_json_schema()
