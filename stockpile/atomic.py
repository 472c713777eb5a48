"""Atomic writes of persisted state: write a temporary file beside the target, then rename over it, so a crash
never leaves a half-written file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml


def _mode() -> int:
    """The mode a newly created file gets under the current umask (mkstemp's temp files are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_text_atomic(dest: str | Path, text: str) -> Path:
    """Write beside the target, flush to disk, keep the target's mode (or the umask's), then rename over it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, dest.stat().st_mode & 0o777 if dest.exists() else _mode())
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


def check_output_path(dest: str | Path, field: str) -> Path:
    """Refuse an output path that cannot be written before any long work starts: a folder, a missing parent
    that cannot be created, a read-only location."""
    from stockpile.errors import InputError
    p = Path(dest)
    if p.is_dir():
        raise InputError(field, f"{p} is a folder; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(field, f"cannot create the folder {parent}: {exc.strerror or exc}") from None
    if not os.access(parent, os.W_OK):
        raise InputError(field, f"cannot write in {parent}")
    return p
