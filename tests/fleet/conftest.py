"""Fleet fixtures (helpers live in fleet_helpers.py so tests can import them by a unique name)."""
from __future__ import annotations

import copy

import pytest
from fleet_helpers import BASE, fake_rates

from stockpile.fleet.rates import Rates


@pytest.fixture
def rates() -> Rates:
    return fake_rates()


@pytest.fixture
def base() -> dict:
    return copy.deepcopy(BASE)
