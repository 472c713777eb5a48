"""FastAPI application: thin routes over the library; StockpileError becomes a 4xx with one message."""
from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from stockpile import __version__
from stockpile.api.schemas import EstimateRequest, PlanRequest, SearchRequest, TrainRequest
from stockpile.errors import InfeasibleError, StockpileError, UnknownNameError


def create_app() -> FastAPI:
    app = FastAPI(title="Stockpile", version=__version__,
                  description="How far a fixed stock of accelerators goes, and how to get the most out of each.")

    @app.exception_handler(StockpileError)
    async def _stockpile_error(_: Request, exc: StockpileError) -> JSONResponse:
        code = 404 if isinstance(exc, UnknownNameError) else 422 if not isinstance(exc, InfeasibleError) else 409
        body: dict[str, Any] = {"error": str(exc)}
        if isinstance(exc, UnknownNameError):
            body["suggestions"] = exc.suggestions
        return JSONResponse(status_code=code, content=body)

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/api/chips")
    def chips() -> list[dict[str, Any]]:
        from stockpile.catalog.chips import list_chips
        return [{**c.model_dump(), "tpp": c.tpp, "eccn_3a090": c.eccn_3a090} for c in list_chips()]

    @app.get("/api/models")
    def models() -> list[dict[str, Any]]:
        from stockpile.catalog.models import list_models
        return [{"id": m.id, "architecture": m.architecture, "params_b": round(m.params / 1e9, 3),
                 "active_params_b": round(m.active_params / 1e9, 3), "layers": m.layers, "hidden": m.hidden,
                 "attention": m.attention, "experts": m.experts} for m in list_models()]

    @app.post("/api/estimate")
    def estimate(req: EstimateRequest) -> dict[str, Any]:
        from stockpile.perf.request import run_estimate
        return run_estimate(req).model_dump()

    @app.post("/api/search")
    def search(req: SearchRequest) -> dict[str, Any]:
        from stockpile.catalog import get_chip, get_model
        from stockpile.search.serving import Slo
        from stockpile.search.serving import search as run
        r = run(get_model(req.model), get_chip(req.chip), gpus=req.gpus, isl=req.isl, osl=req.osl,
                slo=Slo(ttft_ms=req.ttft_ms, tpot_ms=req.tpot_ms), engine=req.engine, top=req.top,
                disaggregation=req.disaggregation)
        return {**r.model_dump(), "best": r.best.model_dump() if r.best else None}

    @app.post("/api/train")
    def train(req: TrainRequest) -> dict[str, Any]:
        from stockpile.search.training import train as run
        return run(req.model, req.chip, req.gpus, req.tokens, seq_len=req.seq_len,
                   precision=req.precision).model_dump()

    @app.post("/api/plan")
    def plan(req: PlanRequest) -> dict[str, Any]:
        from stockpile.fleet.planner import plan_scenario
        return plan_scenario(req.scenario, samples=req.samples).to_contract()

    @app.get("/", response_class=HTMLResponse)
    def dashboard() -> str:
        return (resources.files("stockpile") / "api" / "dashboard.html").read_text()

    return app


app = create_app()
