"""Fixtures for the training tests: the priors (properties must hold before any fit) and the shipped rows."""
from __future__ import annotations

import csv

import pytest

from stockpile.calibration.fit_training import default_file
from stockpile.perf.training import TrainCalibration


@pytest.fixture
def priors() -> TrainCalibration:
    return TrainCalibration({}, {}, {}, {"fitted": None})


@pytest.fixture(scope="session")
def shipped_rows() -> list[dict[str, str]]:
    with default_file().open(newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="session")
def shipped_predictions(shipped_rows) -> list[dict]:
    from stockpile.calibration.training import predict_training_rows
    return predict_training_rows(shipped_rows)
