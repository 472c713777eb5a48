"""Fixtures for the measure tests: a real llama.cpp server with a tiny model, started once per session."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from .cpu_server import TinyServer, tiny_server


@pytest.fixture(scope="session")
def cpu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyServer]:
    """llama-server on a free loopback port serving the tiny model: (url, served model name, model folder)."""
    with tiny_server(tmp_path_factory.mktemp("cpu-server")) as server:
        yield server
