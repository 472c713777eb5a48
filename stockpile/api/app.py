"""FastAPI application: thin routes over the library; StockpileError becomes a 4xx with one message."""
from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline

from stockpile import __version__
from stockpile.api.limits import BodyLimits, HeavyPool
from stockpile.api.schemas import ApiEstimateRequest, PlanRequest, SearchRequest, TrainRequest
from stockpile.errors import InfeasibleError, StockpileError, UnknownNameError


def create_app() -> FastAPI:
    # /docs and /redoc from assets shipped in the fastapi-offline package (no CDN: they work offline)
    app: FastAPI = FastAPIOffline(title="Stockpile", version=__version__,
                                  description="How far a fixed stock of accelerators goes, and how to get the most "
                                              "out of each.")
    app.add_middleware(BodyLimits)
    heavy = HeavyPool()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        return JSONResponse(status_code=422, content={"error": f"{loc}: {msg}",
                                                      "detail": [{"loc": e.get("loc"), "msg": e.get("msg")}
                                                                 for e in errs[:20]]})

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content={"error": exc.detail}, headers=exc.headers)

    @app.exception_handler(StockpileError)
    async def _stockpile_error(_: Request, exc: StockpileError) -> JSONResponse:
        code = 404 if isinstance(exc, UnknownNameError) else 422 if not isinstance(exc, InfeasibleError) else 409
        body: dict[str, Any] = {"error": str(exc)}
        if isinstance(exc, UnknownNameError):
            body["suggestions"] = exc.suggestions
        return JSONResponse(status_code=code, content=body)

    @app.get("/api/health")
    async def health() -> dict[str, str]:
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
    def estimate(req: ApiEstimateRequest) -> dict[str, Any]:
        from stockpile.perf.request import run_estimate
        return run_estimate(req).model_dump()

    def _search(req: SearchRequest) -> dict[str, Any]:
        from stockpile.catalog import get_chip, get_model
        from stockpile.catalog.models import implied_weight_dtype
        from stockpile.search.serving import Slo
        from stockpile.search.serving import search as run
        implied = implied_weight_dtype(req.model)          # as the CLI reads a -FP8 / -AWQ checkpoint
        r = run(get_model(req.model), get_chip(req.chip), gpus=req.gpus, isl=req.isl, osl=req.osl,
                slo=Slo(ttft_ms=req.ttft_ms, tpot_ms=req.tpot_ms), engine=req.engine, top=req.top,
                disaggregation=req.disaggregation, dtypes=[implied] if implied else None,
                engine_version=req.engine_version, confidence=req.confidence)
        return {**r.model_dump(), "best": r.best.model_dump() if r.best else None}

    def _train(req: TrainRequest) -> dict[str, Any]:
        from stockpile.search.training import train as run
        return run(req.model, req.chip, req.gpus, req.tokens, seq_len=req.seq_len,
                   precision=req.precision, framework=req.framework).model_dump()

    def _plan(req: PlanRequest) -> dict[str, Any]:
        from stockpile.fleet.planner import plan_scenario
        return plan_scenario(req.scenario, samples=req.samples).to_contract()

    @app.post("/api/search")
    async def search(req: SearchRequest) -> dict[str, Any]:
        return await heavy.run(_search, req)

    @app.post("/api/train")
    async def train(req: TrainRequest) -> dict[str, Any]:
        return await heavy.run(_train, req)

    @app.post("/api/plan")
    async def plan(req: PlanRequest) -> dict[str, Any]:
        return await heavy.run(_plan, req)

    @app.get("/", response_class=HTMLResponse)
    def dashboard() -> str:
        return (resources.files("stockpile") / "api" / "dashboard.html").read_text()

    return app


app = create_app()
