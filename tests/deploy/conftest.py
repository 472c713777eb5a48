"""Fixtures for the deploy-layer tests (cases live in deploy_cases.py)."""

from __future__ import annotations

import pytest
from deploy_cases import CASES, ENGINES, make_spec

from stockpile.deploy import DeploySpec


@pytest.fixture(params=[(c, e) for c in CASES for e in ENGINES], ids=lambda p: f"{p[0]}-{p[1]}")
def spec(request: pytest.FixtureRequest) -> DeploySpec:
    case, engine = request.param
    return make_spec(case, engine)
