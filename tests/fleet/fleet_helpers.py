"""Fleet test helpers: fake serving/training rates (no dependence on the performance layers), a small scenario."""
from __future__ import annotations

from stockpile.fleet.rates import Rates

# Output tokens/s per GPU and training tokens/s per GPU of the fake rates.
SERVE = {"h800-sxm-80gb": 100.0, "h20-96gb": 100.0, "a800-sxm-80gb": 50.0, "ascend-910b-64gb": 40.0}
TRAIN = {"h800-sxm-80gb": 1000.0, "h20-96gb": 250.0, "a800-sxm-80gb": 400.0, "ascend-910b-64gb": 300.0}
HOURS = 8766.0 / 12.0


def fake_rates() -> Rates:
    return Rates(serving=lambda model, chip, isl, osl, ttft, tpot, dtype=None: SERVE.get(chip, 0.0),
                 training=lambda params_b, active_b, chip, gpus, model: (TRAIN[chip], 0.9) if chip in TRAIN else None)


def output_tokens_per_day(tok_s: float, isl: float = 500, osl: float = 500) -> float:
    """tokens_per_day (input + output) whose output rate is tok_s."""
    return tok_s * 86400 * (isl + osl) / osl


BASE = {
    "name": "toy", "start": "2025-01", "horizon_months": 12,
    "stock": [{"chip": "h800-sxm-80gb", "count": 1000, "age_months": 0}],
    "attrition": {"curve": [{"age_years": 0, "annual_rate": 0.0}]},
    "inference": [{"name": "chat", "model": "Qwen/Qwen3-32B", "tokens_per_day": output_tokens_per_day(50_000),
                   "isl": 500, "osl": 500, "monthly_growth": 0.10}],
    "serving_reserve": 0.0,
    "uncertainty": {"demand_growth_sd": 0.0, "demand_level_sd": 0.0, "attrition_sigma": 0.0,
                    "procurement_delay_mean_months": 0.0, "fill_rate": {"low": 1.0, "high": 1.0},
                    "goodput": {"low": 0.9, "high": 0.9}},
}


