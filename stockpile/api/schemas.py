"""Request models of the REST API (responses reuse the library's pydantic results)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

# one request model for the CLI, the API and the library (perf/request.py); the API's takes catalog ids or an
# uploaded config.json, never a path on the server
from stockpile.perf.request import (
    EstimateRequest,  # noqa: E402
    catalog_id,
)


class ApiEstimateRequest(EstimateRequest):
    _model = field_validator("model")(catalog_id)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    model: str = Field(min_length=1, max_length=200)
    chip: str = Field(min_length=1, max_length=100)
    gpus: int = Field(ge=1, le=65_536)

    _model = field_validator("model")(catalog_id)
    isl: float = Field(gt=0)
    osl: float = Field(gt=0)
    ttft_ms: float | None = Field(default=None, gt=0)
    tpot_ms: float | None = Field(default=None, gt=0)
    engine: str = "vllm"
    engine_version: str | None = Field(default=None, max_length=40)
    top: int = Field(default=5, ge=1, le=50)
    disaggregation: bool = True
    # targets met for this share of measured runs (search.serving.confidence_margins); None: the prediction
    confidence: float | None = Field(default=None, ge=0.5, le=0.99)


class TrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    model: str = Field(min_length=1, max_length=200)
    chip: str = Field(min_length=1, max_length=100)
    gpus: int = Field(ge=1, le=1_000_000)
    tokens: float = Field(gt=0, le=1e16)

    _model = field_validator("model")(catalog_id)
    seq_len: int | None = Field(default=None, ge=16)
    precision: str = "bf16"
    framework: str = Field(default="megatron", max_length=40)


class PlanRequest(BaseModel):
    """A scenario as JSON (the YAML scenario's structure; `stockpile plan --schema`); empty: the bundled one."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    scenario: dict | None = None
    samples: int = Field(default=2000, ge=0, le=20000)
