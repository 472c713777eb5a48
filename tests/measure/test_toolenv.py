"""The tools cache: where it lives, what counts as installed, and the messages when a tool is missing."""
from __future__ import annotations

from pathlib import Path

import pytest

from stockpile.measure import loadgen, toolenv


def test_tools_root_follows_the_environment_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(toolenv.ENV_VAR, str(tmp_path / "t"))
    assert toolenv.tools_root() == tmp_path / "t"
    assert loadgen.aiperf_path() == tmp_path / "t" / f"aiperf-{loadgen.AIPERF_VERSION}" / "bin" / "aiperf"
    monkeypatch.delenv(toolenv.ENV_VAR)
    assert toolenv.tools_root().parts[-2:] == ("stockpile", "tools")


def test_installed_only_with_the_marker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(toolenv.ENV_VAR, str(tmp_path))
    (tmp_path / loadgen.TOOL_NAME / "bin").mkdir(parents=True)
    (tmp_path / loadgen.TOOL_NAME / "bin" / "aiperf").touch()
    assert not loadgen.loadgen_installed()          # an interrupted install: no marker yet
    (tmp_path / loadgen.TOOL_NAME / toolenv.MARKER).touch()
    assert loadgen.loadgen_installed()


def test_build_without_cmake_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(toolenv.ENV_VAR, str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    with pytest.raises(toolenv.ToolError, match="needs 'cmake'.*apt-get install cmake"):
        toolenv.ensure_llama_server(progress=None)


def test_constraints_pin_aiperf() -> None:
    pins = loadgen.constraints_file().read_text().splitlines()
    assert f"aiperf=={loadgen.AIPERF_VERSION}" in pins
    assert not any(p.lower().startswith("torch==") for p in pins)
