"""One typed request for a serving estimate, shared by the CLI, the API and library callers.

:class:`EstimateRequest` holds what a user states (model, chip, layout, dtypes, engine and release, lengths,
load, speculative decoding, prefix caching) and checks each field; :func:`run_estimate` resolves it against the
catalogs (the GPU count from the layout, the weight dtype a checkpoint implies, the accept length of a draft
count) and runs perf.inference.estimate: the steady state, or the scheduler simulation under a request rate or
a trace. Everything a default filled in is said in the result's `assumptions`.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stockpile.errors import InputError
from stockpile.perf.serving import MIN_REQUEST_RATE, check_batch_wait, check_intervals

MAX_SIM_REQUESTS = 200_000      # a simulated run's requests (bounded work per call)


class TraceRecord(BaseModel):
    """One request of a trace (CONTRACTS.md: `estimate --trace`)."""

    model_config = ConfigDict(extra="forbid")
    arrival_s: float = Field(ge=0)
    input_len: int = Field(ge=1)
    output_len: int = Field(ge=1)
    prefix_group: str | None = None
    prefix_len: int = Field(default=0, ge=0)


def catalog_id(value: str) -> str:
    """A model named by its catalog (Hugging Face) id, never a file path: the API does not read server files."""
    v = value.strip()
    if (v.endswith(".json") or v.startswith(("/", ".", "~")) or "\\" in v or v.count("/") > 1
            or any(ord(ch) < 32 for ch in v)):
        raise ValueError("a catalog model id such as meta-llama/Llama-3.1-8B-Instruct (see /api/models), or send "
                         "the model's config.json as `config`; the API reads no files")
    return v


class EstimateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    model: str = Field(min_length=1, max_length=500)
    chip: str = Field(min_length=1, max_length=100)
    config: dict[str, Any] | None = None   # an uploaded Hugging Face config.json; `model` then names it
    gpus: int | None = Field(default=None, ge=1, le=1_000_000)
    tp: int | None = Field(default=None, ge=1, le=4096)
    pp: int | None = Field(default=None, ge=1, le=512)
    ep: int | None = Field(default=None, ge=1, le=4096)
    dp: int | None = Field(default=None, ge=1, le=100_000)
    attention_dp: bool = False
    weight_dtype: str | None = None
    kv_dtype: str | None = None
    engine: str = "vllm"
    engine_version: str | None = Field(default=None, max_length=40)
    isl: float | None = Field(default=None, gt=0, le=10_000_000)
    osl: float | None = Field(default=None, gt=0, le=10_000_000)
    concurrency: float | None = Field(default=None, gt=0, le=10_000_000)
    request_rate: float | None = Field(default=None, ge=MIN_REQUEST_RATE, le=1_000_000)
    num_requests: int | None = Field(default=None, ge=1, le=MAX_SIM_REQUESTS)
    spec_draft: int = Field(default=0, ge=0, le=16)
    spec_accept: float | None = Field(default=None, ge=1)
    spec_verify: int = Field(default=0, ge=0, le=64)   # a draft tree's tokens verified per step (0: a chain)
    prefix_hit: float = Field(default=0.0, ge=0, lt=1)
    # how request lengths vary in a closed loop, (max - min) / mean: 0 fixed (a benchmark's default), 0.2 for
    # lengths drawn from [0.8 L, L] (InferenceX), "inf" for free variation (chat traffic, ShareGPT)
    length_spread: float = Field(default=0.0, ge=0, allow_inf_nan=True)
    allow_long_context: bool = False   # input + output beyond the model's context window (said so)
    # SGLang's --scheduler-recv-interval and --stream-interval (decode steps between polls / output flushes)
    recv_interval: int = Field(default=1, ge=1, le=10_000)
    stream_interval: int = Field(default=1, ge=1, le=10_000)
    # TensorRT-LLM's batch waiting: batch_wait_timeout_iters, and batch_wait_max_tokens_ratio x max_num_tokens
    batch_wait_iters: int = Field(default=0, ge=0, le=10_000)
    batch_wait_tokens: int = Field(default=0, ge=0, le=10_000_000)
    cost_basis: Literal["auto", "rental", "tco"] = "auto"   # what a GPU-hour costs (catalog/prices.py)
    trace: list[TraceRecord] | None = Field(default=None, max_length=MAX_SIM_REQUESTS)

    @field_validator("engine_version")
    @classmethod
    def _release_number(cls, v: str | None) -> str | None:
        from stockpile.perf.calibration import check_release
        try:
            return check_release(v)
        except InputError as exc:
            raise ValueError(str(exc).split(": ", 1)[1]) from None

    @model_validator(mode="after")
    def _consistent(self) -> "EstimateRequest":
        if self.trace is not None:
            if self.concurrency is not None or self.request_rate is not None:
                raise ValueError("trace: give a trace alone, without concurrency or request_rate")
            if not self.trace:
                raise ValueError("trace: holds no requests")
        elif self.isl is None or self.osl is None:
            raise ValueError(f"{'isl' if self.isl is None else 'osl'}: give isl and osl (or a trace)")
        if self.length_spread != self.length_spread:
            raise ValueError("length_spread: a number >= 0 (0 fixed lengths, inf freely varied), not NaN")
        if self.concurrency is not None and self.request_rate is not None:
            raise ValueError("request_rate: give either concurrency or request_rate, not both")
        check_intervals(self.engine, self.recv_interval, self.stream_interval)
        check_batch_wait(self.engine, self.batch_wait_iters, self.batch_wait_tokens)
        if self.spec_verify and (self.spec_draft == 0 or self.spec_verify < self.spec_draft + 1):
            raise ValueError(f"spec_verify: a draft tree verifies at least spec_draft + 1 = {self.spec_draft + 1} "
                             f"tokens per step and needs draft tokens (spec_draft >= 1), got {self.spec_verify}")
        if self.spec_accept is not None:
            if self.spec_draft == 0 and self.spec_accept != 1:
                raise ValueError("spec_accept: an accept length needs draft tokens (spec_draft >= 1)")
            if self.spec_accept > self.spec_draft + 1:
                raise ValueError(f"spec_accept: at most spec_draft + 1 = {self.spec_draft + 1} tokens per step "
                                 f"(the drafts plus the verified token), got {self.spec_accept:g}")
        return self

    @classmethod
    def of(cls, **fields: Any) -> "EstimateRequest":
        """Build and check; a bad field raises InputError naming it (the CLI's one-line error)."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise input_error(exc) from None


def input_error(exc: ValidationError) -> InputError:
    """The first validation error as an InputError naming its field."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "request"
    msg = str(err.get("msg", "invalid"))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
        if ":" in msg and loc == "request":
            loc, msg = msg.split(":", 1)
            msg = msg.strip()
    return InputError(loc, msg)


def trace_requests(records: list[TraceRecord]) -> Any:
    """TraceRecords (already checked) -> simulate.Requests, with the ordering and prefix rules of perf/trace."""
    import numpy as np

    from stockpile.perf.simulate import Requests
    last, seen, cached = -1.0, set(), []
    for k, r in enumerate(records, start=1):
        if r.arrival_s < last:
            raise InputError("trace", f"record {k}: arrival_s {r.arrival_s:g} is before the previous one's "
                                      f"{last:g}; sort the trace by arrival time")
        last = r.arrival_s
        hit = 0
        if r.prefix_group is not None:
            if r.prefix_group in seen:
                hit = min(r.prefix_len, r.input_len - 1)
            seen.add(r.prefix_group)
        cached.append(hit)
    t = np.array([r.arrival_s for r in records])
    return Requests(arrival=t - t[0], isl=np.array([r.input_len for r in records], dtype=np.int64),
                    osl=np.array([r.output_len for r in records], dtype=np.int64),
                    cached=np.array(cached, dtype=np.int64))


def run_estimate(req: EstimateRequest, *, requests: Any = None) -> Any:
    """Resolve and estimate (perf.inference.InferenceEstimate). `requests` (simulate.Requests, e.g. read from a
    JSONL file by perf.trace) stands for `req.trace`."""
    from stockpile.calibration.notes import default_accept_length
    from stockpile.catalog import get_chip, get_model
    from stockpile.catalog.dtypes import normalise_dtype
    from stockpile.catalog.models import implied_weight_dtype, model_notes
    from stockpile.perf.inference import estimate
    from stockpile.perf.layout import resolve_layout
    if req.config is not None:
        from stockpile.catalog.models import spec_from_config
        m = spec_from_config(req.config, model_id=req.model)
    else:
        m = get_model(req.model)
    c = get_chip(req.chip)
    if requests is None and req.trace is not None:
        requests = trace_requests(req.trace)
    if requests is not None:
        isl, osl = float(requests.isl.mean()), float(requests.osl.mean())
    else:
        assert req.isl is not None and req.osl is not None
        isl, osl = req.isl, req.osl
    n = req.gpus or (req.tp or 1) * (req.pp or 1) * ((req.dp or 1) if not req.attention_dp else 1) * (
        1 if req.tp or req.ep is None else req.ep)
    if req.pp is not None and req.pp > m.layers:
        raise InputError("pp", f"{req.pp} pipeline stages for {m.layers} layers; at most {m.layers}")
    lay = resolve_layout(gpus=n, tp=req.tp, pp=req.pp, ep=req.ep, dp=req.dp, is_moe=m.is_moe,
                         attention_dp=req.attention_dp or None)
    notes = [] if req.tp is not None else [f"tp not given: TP{lay.attn_tp}"]
    if req.config is None:
        notes[:0] = model_notes(req.model)
    if m.max_position and isl + osl > m.max_position:
        if not req.allow_long_context:
            raise InputError("isl", f"input + output = {isl + osl:,.0f} tokens exceeds {m.id}'s context of "
                                    f"{m.max_position:,}; shorten them, or pass --allow-long-context to model it "
                                    "anyway")
        notes.append(f"input + output ({isl + osl:,.0f} tokens) beyond the model's context ({m.max_position:,}): "
                     "modelled anyway, as asked")
    accept = req.spec_accept if req.spec_accept is not None else default_accept_length(req.spec_draft)
    return estimate(m, c, layout=lay, engine=req.engine, weight_dtype=normalise_dtype(req.weight_dtype) or implied_weight_dtype(req.model),
                    kv_dtype=req.kv_dtype, isl=isl, osl=osl, concurrency=req.concurrency,
                    request_rate=req.request_rate, spec_draft=req.spec_draft, spec_accept=accept,
                    spec_verify=req.spec_verify,
                    prefix_hit=req.prefix_hit, length_spread=req.length_spread, assumptions=notes, trace=requests,
                    engine_version=req.engine_version,
                    num_requests=None if req.num_requests is None else float(req.num_requests),
                    cost_basis=req.cost_basis, recv_interval=req.recv_interval, stream_interval=req.stream_interval,
                    batch_wait_iters=req.batch_wait_iters, batch_wait_tokens=req.batch_wait_tokens)
