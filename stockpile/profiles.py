"""Calibration profiles in the user's data directory (platformdirs), never inside the installed package.

`stockpile calibrate` writes `<user data dir>/stockpile/calibrations/NAME.yaml` (inference) or
`NAME.training.yaml` (`--training`), or the `--out` file; `--calibration NAME|FILE` on a command selects one;
without it the shipped fit is used. `STOCKPILE_HOME` moves the folder (tests, shared machines)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from stockpile.errors import InputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def profile_dir() -> Path:
    home = os.environ.get("STOCKPILE_HOME")
    if home:
        return Path(home) / "calibrations"
    import platformdirs
    return Path(platformdirs.user_data_dir("stockpile", appauthor=False)) / "calibrations"


def profile_path(name: str, *, training: bool = False) -> Path:
    if not _NAME.match(name):
        raise InputError("profile", f"'{name}' is not a profile name: letters, digits, '.', '_' and '-' "
                                    "(e.g. my-h20-fleet)")
    return profile_dir() / (f"{name}.training.yaml" if training else f"{name}.yaml")


def available() -> list[str]:
    d = profile_dir()
    return sorted(p.name[: -len(".yaml")] for p in d.glob("*.yaml")) if d.is_dir() else []


def resolve(name_or_file: str | Path, *, training: bool = False) -> Path | None:
    """The calibration file a `--calibration` value names: an existing file, or a profile of that name (for the
    inference or the training model). None where a profile exists only for the other model."""
    p = Path(name_or_file)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.is_file():
            raise InputError("calibration", f"file not found: {p}")
        return p
    name = str(name_or_file)
    own, other = profile_path(name, training=training), profile_path(name, training=not training)
    if own.is_file():
        return own
    if other.is_file():
        return None
    have = available()
    raise InputError("calibration", f"no profile '{name}' in {profile_dir()}"
                                    + (f"; available: {', '.join(have)}" if have else
                                       "; write one with `stockpile calibrate --profile NAME`"))
