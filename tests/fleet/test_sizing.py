"""Inference-aware sizing: Chinchilla closed form without inference, smaller-and-longer with it."""
from __future__ import annotations

import pytest

from stockpile.errors import InputError
from stockpile.fleet.planner import size_model
from stockpile.fleet.sizing import scaling_law


def test_constants_come_from_fleet_facts():
    law = scaling_law("besiroglu2024")
    assert (law.E, law.A, law.B, law.alpha, law.beta) == (1.8172, 482.01, 2085.43, 0.3478, 0.3658)
    assert "2404.10102" in law.source
    assert scaling_law("hoffmann2022").alpha == 0.34


def test_without_inference_matches_the_chinchilla_closed_form():
    r = size_model(compute_budget_flop=1e24)
    law = scaling_law()
    assert r.optimal.active_params_b * 1e9 == pytest.approx(law.chinchilla_params(1e24), rel=1e-4)
    assert r.optimal.training_flop == pytest.approx(1e24, rel=1e-6)
    assert 17 < r.optimal.tokens_per_param < 21           # the refit's ~20 tokens per parameter
    t = size_model(target_loss=r.optimal.loss)
    assert t.optimal.active_params_b == pytest.approx(r.optimal.active_params_b, rel=1e-3)
    assert t.saving_vs_chinchilla == pytest.approx(0.0, abs=1e-6)


def test_inference_makes_models_smaller_and_longer_trained():
    sizes = [size_model(target_loss=2.0, inference_tokens=d) for d in (0, 1e12, 1e13, 1e14)]
    n = [s.optimal.active_params_b for s in sizes]
    ratio = [s.optimal.tokens_per_param for s in sizes]
    assert n == sorted(n, reverse=True) and ratio == sorted(ratio)
    assert all(s.optimal.loss == pytest.approx(2.0, abs=1e-6) for s in sizes)
    assert all(s.optimal.total_flop <= s.chinchilla.total_flop * (1 + 1e-9) for s in sizes)
    assert sizes[-1].saving_vs_chinchilla > 0.3


def test_budget_mode_spends_the_budget():
    r = size_model(compute_budget_flop=1e24, inference_tokens=1e13)
    assert r.optimal.total_flop == pytest.approx(1e24, rel=1e-6)
    assert r.optimal.inference_flop == pytest.approx(2 * r.optimal.active_params_b * 1e9 * 1e13, rel=1e-9)
    assert r.chinchilla.loss == pytest.approx(r.optimal.loss) and r.chinchilla.total_flop >= 1e24


def test_moe_counts_active_and_total():
    r = size_model(target_loss=2.0, inference_tokens=1e13, moe_active_ratio=0.05, moe_dense_equivalent=2.0)
    assert r.optimal.total_params_b == pytest.approx(r.optimal.active_params_b / 0.05)
    dense = size_model(target_loss=2.0, inference_tokens=1e13)
    assert r.optimal.active_params_b < dense.optimal.active_params_b
    assert r.optimal.training_flop < dense.optimal.training_flop


def test_bad_inputs():
    with pytest.raises(InputError, match="irreducible"):
        size_model(target_loss=1.5)
    with pytest.raises(InputError):
        size_model()
    with pytest.raises(InputError):
        size_model(target_loss=2.0, moe_active_ratio=1.5)
    with pytest.raises(InputError, match="unknown scaling law"):
        size_model(target_loss=2.0, law="kaplan")
