"""Fleet planning: how to split a fixed, ageing stock of accelerators between training and inference, month by
month, and how long it lasts (runway) under uncertainty; plus inference-aware model sizing.

    from stockpile.fleet import plan_scenario, size_model
    result = plan_scenario("scenario.yaml")        # PlanResult: .summary(), .to_contract()

Submodules load lazily: importing this package does not import scipy.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "PlanResult",
    "Rates",
    "Scenario",
    "SizingResult",
    "example_path",
    "load_scenario",
    "plan_scenario",
    "scenario_schema",
    "size_model",
]

_WHERE = {"plan_scenario": "planner", "size_model": "planner", "scenario_schema": "planner", "example_path": "planner",
          "load_scenario": "scenario_load", "Scenario": "scenario", "PlanResult": "result",
          "SizingResult": "sizing", "Rates": "rates"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib
        return getattr(importlib.import_module(f"stockpile.fleet.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'stockpile.fleet' has no attribute '{name}'")
