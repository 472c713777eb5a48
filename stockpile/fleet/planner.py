"""Entry points the CLI and the web API call: plan a scenario (or compare several), size a model, print the
scenario schema. The pipeline, one stage per module:

    scenario.py (YAML -> Scenario) -> problem.py (arrays, policy worlds; pairs.py: chip pairs)
        -> milp.py (scenario-tree MILP) -> solution.py (its solution, each world's path)
        -> runway.py (Monte Carlo of the plan) + stock_alone.py (the stock by itself, the ladder)
        -> result.py (PlanResult: .to_contract(), .summary())

    plan_scenario(path_or_dict, *, samples=10_000, backend="numpy") -> PlanResult
    compare_scenarios([a, b, ...]) -> Comparison                                        (plan A.yaml B.yaml)
    size_model(compute_budget_flop=..., target_loss=..., inference_tokens=...) -> SizingResult
    scenario_schema() -> dict                                                          (plan --schema)
    example_path() -> Path                                                             (the bundled scenario)

The HTML report lives in stockpile.report (the CLI and the API call it; the library never imports it).
"""
from __future__ import annotations

import contextlib
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the heavy modules (scipy) load when a function runs, not at import
    from stockpile.fleet.rates import Rates
    from stockpile.fleet.result import Comparison, PlanResult
    from stockpile.fleet.scenario import Scenario
    from stockpile.fleet.sizing import SizingResult


def example_path() -> Path:
    """The bundled example scenario (a Chinese hyperscaler), what ``make demo`` plans."""
    return Path(str(resources.files("stockpile") / "data" / "examples" / "hyperscaler.yaml"))


def scenario_schema() -> dict[str, Any]:
    """The scenario file's JSON Schema (``stockpile plan --schema``)."""
    from stockpile.fleet.scenario import scenario_json_schema
    return scenario_json_schema()


def default_rates(scn: Scenario) -> Rates:
    """Serving from the serving search; training from the training model at each run's size (rates.py)."""
    from stockpile.fleet.rates import Rates, default_serving_rate, training_speed_fn
    return Rates(serving=default_serving_rate, training=training_speed_fn(scn.training.precision),
                 notes=["training speed: the training model's best layout at each run's chip count, with its "
                        "goodput (one path for generations given by catalog id or by size)"])


def plan_scenario(path_or_dict: str | Path | dict[str, Any] | Scenario | None = None, *, samples: int = 10_000,
                  backend: str = "numpy", seed: int | None = None, rates: Rates | None = None,
                  time_limit_s: float = 60.0, mip_rel_gap: float = 1e-3, stock_only: bool = True) -> PlanResult:
    """Load, validate, plan (scenario-tree MILP), run the Monte Carlo runway, and answer for the stock alone;
    `samples=0` skips the Monte Carlo (the answer is then the deterministic plan).

    Bad input raises InputError / UnknownNameError naming the field and line; an impossible programme is not an
    error: the result holds the best partial plan and its unmet demand."""
    from stockpile.catalog.chips import extra_chips
    from stockpile.fleet.chips_in import scenario_chips
    from stockpile.fleet.runway import check_backend, check_samples
    from stockpile.fleet.scenario_load import load_scenario

    if samples:
        backend = check_backend(backend)
        check_samples(samples)
    loaded = load_scenario(example_path() if path_or_dict is None else path_or_dict)
    scn = loaded.scenario
    with extra_chips(scenario_chips(scn)) if scn.chips else contextlib.nullcontext():
        return _plan(scn, samples=samples, backend=backend, seed=seed, rates=rates or default_rates(scn),
                     time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap, stock_only=stock_only)


def _plan(scn: Scenario, *, samples: int, backend: str, seed: int | None, rates: Rates, time_limit_s: float,
          mip_rel_gap: float, stock_only: bool) -> PlanResult:
    from stockpile.fleet.background import in_background
    from stockpile.fleet.milp import solve
    from stockpile.fleet.problem import compile_problem
    from stockpile.fleet.result import assemble
    from stockpile.fleet.runway import draw, monte_carlo
    from stockpile.fleet.stock_alone import stock_alone_answer

    t0 = time.perf_counter()
    training = rates.training or default_rates(scn).training
    assert training is not None
    pb = compile_problem(scn, rates.serving, training)
    sol = solve(pb, time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap)
    notes: list[str] = list(rates.notes)
    if sol.status == "time_limit":
        notes.append(f"the solver stopped at its time limit ({time_limit_s:.0f} s); the plan is the best found"
                     + (f" (gap {sol.mip_gap:.2%})" if sol.mip_gap is not None else ""))
    seed = scn.uncertainty.seed if seed is None else seed
    draws = draw(pb, max(samples, 1), seed)
    # The plan's Monte Carlo and the stock-alone answer are independent: on two or more cores the first runs in a
    # forked process (background.py) while this one solves the stock alone, warm from the plan's basis, and runs
    # its Monte Carlo. (Forking the stock alone before the plan's solve instead loses its warm start and, on this
    # project's 2-core machines, is no faster: bench/plan_scale.py.)
    mc_job = in_background(lambda: monte_carlo(pb, sol, samples=samples, seed=seed, backend=backend, draws=draws),
                           enabled=stock_only and backend == "numpy") if samples else None
    alone = stock_alone_answer(pb, draws if samples else None, training, time_limit_s=time_limit_s,
                               mip_rel_gap=mip_rel_gap, warm_from=sol) if stock_only else None
    mc = mc_job() if mc_job is not None else None
    result = assemble(pb, sol, mc, alone, notes)
    result.seconds = round(time.perf_counter() - t0, 3)
    return result


def compare_scenarios(sources: list[str | Path | dict[str, Any]], **kwargs: Any) -> Comparison:
    """Plan each scenario and line them up: runway, stock-alone runway, generations trainable, cost, and what
    differs between the first and each other one (``plan A.yaml B.yaml``)."""
    from stockpile.fleet.result import compare
    return compare([plan_scenario(src, **kwargs) for src in sources])


def size_model(*, compute_budget_flop: float | None = None, target_loss: float | None = None,
               inference_tokens: float = 0.0, law: str = "besiroglu2024", moe_active_ratio: float | None = None,
               moe_dense_equivalent: float = 1.0) -> SizingResult:
    """Model size and training tokens minimising training + inference compute (see fleet.sizing)."""
    from stockpile.fleet.sizing import size
    return size(compute_budget_flop=compute_budget_flop, target_loss=target_loss, inference_tokens=inference_tokens,
                law=law, moe_active_ratio=moe_active_ratio, moe_dense_equivalent=moe_dense_equivalent)
