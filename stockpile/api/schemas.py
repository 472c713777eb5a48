"""Request models of the REST API (responses reuse the library's pydantic results)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# one request model for the CLI, the API and the library (perf/request.py)
from stockpile.perf.request import EstimateRequest  # noqa: E402,F401


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


class TrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    chip: str
    gpus: int = Field(ge=1)
    tokens: float = Field(gt=0)
    seq_len: int | None = Field(default=None, ge=16)
    precision: str = "bf16"


class PlanRequest(BaseModel):
    """A scenario as JSON (the YAML scenario's structure; `stockpile plan --schema`); empty: the bundled one."""

    model_config = ConfigDict(extra="forbid")
    scenario: dict | None = None
    samples: int = Field(default=2000, ge=0, le=20000)
