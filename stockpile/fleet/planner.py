"""Entry points the CLI and the web API call: plan a scenario, size a model, print the scenario schema.

    plan_scenario(path_or_dict, *, samples=10_000, backend="numpy") -> PlanResult   (.to_contract(), .summary())
    size_model(compute_budget_flop=..., target_loss=..., inference_tokens=...) -> SizingResult
    scenario_schema() -> dict                                                          (plan --schema)
    example_path() -> Path                                                             (the bundled scenario)

The HTML report lives in stockpile.report (the CLI and the API call it; the library never imports it).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the heavy modules (scipy) load when a function runs, not at import
    from stockpile.fleet.result import PlanResult
    from stockpile.fleet.rates import Rates
    from stockpile.fleet.scenario import Scenario
    from stockpile.fleet.sizing import SizingResult


def example_path() -> Path:
    """The bundled example scenario (a Chinese hyperscaler), what ``make demo`` plans."""
    return Path(str(resources.files("stockpile") / "data" / "examples" / "hyperscaler.yaml"))


def scenario_schema() -> dict[str, Any]:
    """The scenario file's JSON Schema (``stockpile plan --schema``)."""
    from stockpile.fleet.scenario import scenario_json_schema
    return scenario_json_schema()


def plan_scenario(path_or_dict: str | Path | dict[str, Any] | Scenario | None = None, *, samples: int = 10_000,
                  backend: str = "numpy", seed: int | None = None, rates: Rates | None = None,
                  time_limit_s: float = 60.0, mip_rel_gap: float = 1e-3, max_resolves: int = 3,
                  stock_only: bool = True) -> PlanResult:
    """Load, validate, plan (MILP) and run the Monte Carlo runway; `samples=0` skips the Monte Carlo.

    `stock_only` also plans the stock alone (no procurement, no rental) to say how far it goes by itself.

    Bad input raises InputError / UnknownNameError naming the field and line; an impossible programme is not an
    error: the result holds the best partial plan and its unmet demand."""
    from stockpile.fleet.milp import solve
    from stockpile.fleet.problem import compile_problem, default_rates
    from stockpile.fleet.result import assemble
    from stockpile.fleet.runway import check_backend, monte_carlo
    from stockpile.fleet.scenario import load_scenario

    if samples:
        backend = check_backend(backend)
    loaded = load_scenario(example_path() if path_or_dict is None else path_or_dict)
    scn = loaded.scenario
    rates = rates or default_rates(scn)
    pb = compile_problem(scn, rates)
    sol = solve(pb, time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap)
    notes: list[str] = list(rates.notes)
    if sol.status == "time_limit":
        notes.append(f"the solver stopped at its time limit ({time_limit_s:.0f} s); the plan is the best found"
                     + (f" (gap {sol.mip_gap:.2%})" if sol.mip_gap is not None else ""))
    mc = None
    if samples:
        def resolve(occurs: list[bool]) -> tuple[Any, Any]:
            events = [e.model_copy(update={"probability": 1.0 if o else 0.0})
                      for e, o in zip(scn.policy_events, occurs)]
            pb_k = compile_problem(scn.model_copy(update={"policy_events": events}), rates)
            return pb_k, solve(pb_k, time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap, duals=False)
        mc = monte_carlo(pb, sol, samples=samples, seed=seed, backend=backend, resolve=resolve,
                         max_resolves=max_resolves)
    result = assemble(pb, sol, mc, notes)
    if stock_only and (scn.procurement or scn.costs.rental):
        bare = scn.model_copy(update={"procurement": [], "costs": scn.costs.model_copy(update={"rental": []})})
        pb0 = compile_problem(bare, rates)
        r0 = assemble(pb0, solve(pb0, time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap, duals=False), None, [])
        result.runway.stock_only = r0.runway.deterministic
        result.runway.stock_only_generations_trained = r0.generations_trained
    elif stock_only:
        result.runway.stock_only = result.runway.deterministic
        result.runway.stock_only_generations_trained = result.generations_trained
    return result


def size_model(*, compute_budget_flop: float | None = None, target_loss: float | None = None,
               inference_tokens: float = 0.0, law: str = "besiroglu2024", moe_active_ratio: float | None = None,
               moe_dense_equivalent: float = 1.0) -> SizingResult:
    """Model size and training tokens minimising training + inference compute (see fleet.sizing)."""
    from stockpile.fleet.sizing import size
    return size(compute_budget_flop=compute_budget_flop, target_loss=target_loss, inference_tokens=inference_tokens,
                law=law, moe_active_ratio=moe_active_ratio, moe_dense_equivalent=moe_dense_equivalent)
