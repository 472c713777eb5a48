"""Serving-engine names: how publications and users spell an engine, read as one of the engines the performance
model calibrates (data/engines/aliases.yaml)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from stockpile.errors import InputError, UnknownNameError

ENGINES = ("vllm", "sglang", "trtllm", "tgi", "other")
# a release written into the name: "vllm 0.11.0", "sglang==0.4.3.post2", "vLLM v0.6.3", "trtllm-1.0.0rc3"
_WITH_VERSION = re.compile(r"^(.*?[a-z])[\s=@:_-]*v?(\d+\.\d+(?:\.\d+)?[\w.+-]*)$", re.I)


@dataclass(frozen=True)
class EngineName:
    engine: str                 # one of ENGINES
    version: str | None         # a release written into the name
    note: str | None            # how a name with no calibration of its own was read


def _key(name: str) -> str:
    return re.sub(r"[\s_.]+", "-", name.strip().lower())


@cache
def _table() -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """{name: (engine, kind)} with kind "spelling", "port", "front end" or "other"; {name: why it is refused}."""
    doc = yaml.safe_load((resources.files("stockpile") / "data" / "engines" / "aliases.yaml").read_text())
    aliases = {_key(a): (engine, kind.replace("_", " ")) for kind in ("spelling", "port", "front_end")
               for engine, names in (doc.get(kind + "s") or {}).items() for a in names or []}
    aliases.update({_key(a): ("other", "other") for a in doc.get("other") or []})
    refused = {_key(k): " ".join(str(v).split()) for k, v in (doc.get("refused") or {}).items()}
    return aliases, refused


def known_names() -> list[str]:
    """Every engine name read: the five engines and their aliases."""
    aliases, _ = _table()
    return list(ENGINES) + sorted(aliases)


def read_engine(name: str, *, allow_version: bool = True) -> EngineName:
    """An engine name -> the calibrated engine it runs as, a release written into the name, and a note where the
    engine has no calibration of its own. Raises InputError for a front end that hides its engine, a release in
    the name where `allow_version` is False (the CLI takes --engine-version), and an unknown name (closest
    names suggested)."""
    raw = str(name).strip()
    aliases, refused = _table()
    def named(k: str) -> bool:
        return k in ENGINES or k in aliases or k in refused

    key, version = _key(raw), None
    if not named(key):
        m = _WITH_VERSION.match(raw)
        if m and named(_key(m.group(1))):
            key, version = _key(m.group(1)), m.group(2)
            if not allow_version:
                raise InputError("engine", f"'{raw}' carries a release; give the engine and the release apart "
                                           f"(--engine {m.group(1).strip()} --engine-version {version})")
    if key in refused:
        raise InputError("engine", f"'{raw}': {refused[key]}")
    engine, kind = (key, "spelling") if key in ENGINES else aliases.get(key, (None, None))
    if engine is None:
        raise UnknownNameError("engine", raw, known_names(),
                               hint="calibrated: " + ", ".join(ENGINES) + ", or a port or spelling of one in "
                                    "data/engines/aliases.yaml; an engine without a calibration of its own can be "
                                    "given as 'other'")
    note = {"port": f"engine '{raw}' read as {engine} (a port of it)",
            "front end": f"engine '{raw}' read as {engine}, the one engine it serves through (its routing and "
                         "disaggregation are the row's layout)",
            "other": f"engine '{raw}' read as other: it has no calibration of its own, so the generic engine's "
                     "constants predict it"}.get(kind or "")
    return EngineName(engine, version, note)
