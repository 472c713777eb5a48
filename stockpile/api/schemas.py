"""Request models of the REST API (responses reuse the library's pydantic results)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EstimateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    chip: str
    gpus: int | None = Field(default=None, ge=1)
    tp: int | None = Field(default=None, ge=1)
    pp: int | None = Field(default=None, ge=1)
    ep: int | None = Field(default=None, ge=1)
    dp: int | None = Field(default=None, ge=1)
    weight_dtype: str | None = None
    kv_dtype: str | None = None
    engine: str = "vllm"
    isl: float = Field(gt=0)
    osl: float = Field(gt=0)
    concurrency: float | None = Field(default=None, gt=0)
    request_rate: float | None = Field(default=None, gt=0)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    chip: str
    gpus: int = Field(ge=1)
    isl: float = Field(gt=0)
    osl: float = Field(gt=0)
    ttft_ms: float | None = Field(default=None, gt=0)
    tpot_ms: float | None = Field(default=None, gt=0)
    engine: str = "vllm"
    top: int = Field(default=5, ge=1, le=50)
    disaggregation: bool = True
