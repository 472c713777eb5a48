"""Atomic writes of persisted state: write a temporary file beside the target, then rename over it, so a crash
never leaves a half-written file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml


def write_text_atomic(dest: str | Path, text: str) -> Path:
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def write_yaml_atomic(dest: str | Path, doc: Any, *, header: str = "") -> Path:
    return write_text_atomic(dest, header + yaml.safe_dump(doc, sort_keys=False))


def rounded(values: dict[str, float], digits: int = 4) -> dict[str, float]:
    """Parameters rounded to `digits` significant figures for a readable calibration file."""
    return {k: float(f"{v:.{digits}g}") for k, v in values.items()}


def write_calibration_yaml(dest: Path, *, meta: dict[str, Any], global_: dict[str, float],
                           groups: dict[str, dict[str, dict[str, float]]], header: str) -> Path:
    """A calibration file: meta, global parameters, then per-group (families, engines, ...) parameters."""
    doc: dict[str, Any] = {"meta": meta, "global": rounded(global_)}
    for name, group in groups.items():
        doc[name] = {k: rounded(v) for k, v in sorted(group.items())}
    return write_yaml_atomic(dest, doc, header=header)
