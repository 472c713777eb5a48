"""The catalog's names: a model id, an alias, a packaging or fine-tune variant, or a fine-tune named after its base,
read as the canonical id of a catalogued config (stockpile/data/models/index.yaml)."""
from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from stockpile.errors import UnknownNameError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml when available

# Suffixes of fine-tunes and packagings that keep the architecture; the dtype some of them imply.
_SUFFIX_DTYPE = [("-fp8-dynamic", "fp8"), ("-fp8", "fp8"), ("-w8a8", "int8"), ("-int8", "int8"),
                 ("-awq", "int4"), ("-gptq-int4", "int4"), ("-gptq", "int4"), ("-w4a16", "int4"),
                 ("-int4", "int4"), ("-nvfp4", "fp4"), ("-fp4", "fp4"), ("-mxfp4", "fp4"), ("-bf16", "bf16")]
_SUFFIXES = ["-instruct", "-chat", "-it", "-hf", "-base", "-0324", "-0528", "-2507", "-2407", "-2409",
             "-2411", "-2501", "-dynamic", "-thinking", "-preview", "-exp", "-v0.1", "-v0.2", "-v0.3", "-fp8",
             "-w8a8", "-awq", "-gptq", "-int4", "-int8", "-w4a16", "-nvfp4", "-fp4", "-mxfp4", "-bf16",
             "-gguf", "-4k", "-8k", "-128k", "-32k", "-1m", "-turbo", "-original", "-instruct-2507"]

_DATA = resources.files("stockpile") / "data" / "models"


@cache
def _index() -> dict[str, dict[str, Any]]:
    path = _DATA / "index.yaml"
    entries = yaml.load(path.read_text(), Loader=_Loader) or [] if path.is_file() else []
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        out[e["id"].lower()] = e
    return out


@cache
def _alias_map() -> dict[str, str]:
    """lower-case id, alias or bare model name -> canonical id."""
    m: dict[str, str] = {}
    for e in _index().values():
        names = [e["id"], *(e.get("aliases") or [])]
        for n in names:
            m.setdefault(n.lower(), e["id"])
            m.setdefault(n.lower().split("/")[-1], e["id"])
    # then each catalog name without its packaging/fine-tune words, so that another variant of a catalogued model
    # finds it (codellama/CodeLlama-34b-Instruct-hf -> CodeLlama-34b-hf: the same architecture); exact names win
    for e in _index().values():
        for n in [e["id"], *(e.get("aliases") or [])]:
            m.setdefault(_strip_suffixes(n.lower().split("/")[-1]), e["id"])
    return m


_SIZE = re.compile(r"(^|-)(\d+x)?\d+(\.\d+)?[bm]($|-)")


@cache
def _sized_names() -> list[tuple[str, str]]:
    """(bare name, canonical id) for every catalogued name or alias that states a size (llama-3.1-8b, mistral-7b,
    mixtral-8x7b), also without "meta-" and with a family word joined to its version (llama3-8b), longest first."""
    out: dict[str, str] = {}
    for key, canonical in _alias_map().items():
        if "/" in key:
            continue
        for k in {key, _strip_suffixes(key), re.sub(r"^meta-", "", _strip_suffixes(key))}:
            for variant in (k, re.sub(r"(?<=[a-z])-(?=\d)", "", k)):
                if _SIZE.search(variant):
                    out.setdefault(variant, canonical)
    return sorted(out.items(), key=lambda kv: (-len(kv[0]), kv[0]))


def _strip_suffixes(name: str) -> str:
    prev = None
    while prev != name:
        prev = name
        for s in sorted(_SUFFIXES, key=len, reverse=True):
            if name.endswith(s):
                name = name[: -len(s)]
                break
    return name


def implied_weight_dtype(model_id: str) -> str | None:
    """The weight dtype a packaging suffix implies (-FP8 -> fp8, -AWQ -> int4, ...), if any."""
    low = model_id.lower()
    for suffix, dtype in _SUFFIX_DTYPE:
        if suffix in low:
            return dtype
    return None


@cache
def alias_context(model_id: str) -> int | None:
    """The context window an alias states where it differs from its canonical entry's config (index.yaml
    `alias_context`: a fine-tune that kept its base's shape but was trained to a longer or shorter context)."""
    key = model_id.strip().lower()
    bare = key.split("/")[-1]
    names = {key, bare, _strip_suffixes(bare)}          # a packaging of the alias (-FP8, -AWQ) keeps its window
    for e in _index().values():
        for alias, n in (e.get("alias_context") or {}).items():
            if names & {alias.lower(), alias.lower().split("/")[-1]}:
                return int(n)
    return None


def resolve_model_id(model_id: str) -> str:
    """Canonical catalog id for a repo id, alias, re-packaged checkpoint or fine-tune suffix."""
    return _resolve(model_id)[0]


def is_config_path(model_id: str) -> bool:
    """Whether a model argument names a config.json (the file, or a folder holding one) rather than a catalog id."""
    return model_id.endswith(".json") or Path(model_id).is_dir() and (Path(model_id) / "config.json").exists()


def resolution_note(model_id: str) -> str | None:
    """What an answer should say where a model id was read as the catalogued base its name carries (None where
    the id, an alias or a packaging variant of it is catalogued, or for a config.json path)."""
    if is_config_path(model_id):
        return None
    canonical, via_base = _resolve(model_id)
    return (f"model {model_id} is not in the catalog: read as {canonical}, the base its name carries (a fine-tune "
            "keeps its base's shape; pass its config.json for another)") if via_base else None


def model_notes(model_id: str) -> list[str]:
    """What an answer should say about the model it read: that a fine-tune was read as its base
    (resolution_note), and that the catalogued config is a reconstruction, not the published file (the index's
    `config_reconstructed`)."""
    if is_config_path(model_id):
        return []
    try:
        canonical = _resolve(model_id)[0]
    except UnknownNameError:        # a spec built elsewhere (an uploaded config, a scaling-law size): nothing to say
        return []
    notes = [n for n in (resolution_note(model_id),) if n is not None]
    why = _index().get(canonical.lower(), {}).get("config_reconstructed")
    if why:
        notes.append(f"model {canonical}: its config.json is reconstructed from {why} (not a copy of a published "
                     "file; stockpile/data/models/index.yaml: config_source, notes)")
    return notes


@cache
def _resolve(model_id: str) -> tuple[str, bool]:
    """(canonical id, whether it was found only as the base named inside the id)."""
    amap = _alias_map()
    low = model_id.strip().lower()
    if "@" in low or ":" in low:
        # a pinned revision ("Qwen/Qwen3-8B@main") names the same model; an Ollama-style tag names its size
        # ("gpt-oss:20b", "qwen3:30b-a3b") or is a label ("gpt-oss-120b:latest", "deepseek-r1:671b")
        stem, _, tag = re.sub(r"@[\w.-]+$", "", low).partition(":")
        size = re.match(r"(\d+(?:\.\d+)?)([bm])\b", tag)
        for t in ([f"{stem}-{tag}"] if size else []) + [stem]:
            try:
                found = _resolve(t)
            except UnknownNameError:
                continue
            # a size tag must fit the model the bare name finds ("deepseek-r1:8b" is a distill, not DeepSeek-R1)
            params = _index()[found[0].lower()].get("params_b")
            if t != stem or not size or (params and abs(float(size.group(1)) * (1e-3 if size.group(2) == "m" else 1)
                                                        / float(params) - 1) < 0.15):
                return found
        raise _unknown(model_id)
    name = low.split("/")[-1]
    for cand in (low, name, _strip_suffixes(low), _strip_suffixes(name)):
        if cand in amap:
            return amap[cand], False
    # drop the organisation and strip packaging words one at a time (e.g. RedHatAI/...-FP8-dynamic), with what
    # quantisers append to them: AMD Quark's "-FP8-KV" (FP8 KV-cache scales) and "-PTPC" (per-token,
    # per-channel scales), a checkpoint revision after a precision ("nvidia/DeepSeek-R1-0528-FP4-v2")
    base = re.sub(r"(-(fp8|fp4|nvfp4|mxfp4|mxfp8|w4a16|w4a8|w8a8|awq|gptq|int4|int8|dynamic|gguf|quantized\.w\w+)"
                  r"(-(kv|ptpc|v\d+))*)+$", "", name)
    for cand in (base, _strip_suffixes(base)):
        if cand in amap:
            return amap[cand], False
    # a fine-tune named after its base ("NousResearch/Hermes-3-Llama-3.1-8B", "dolphin-2.9-llama3-8b"): the longest
    # catalogued name with a size in it that the id holds between separators. A bare revision after it is another
    # release of that name ("...-8B-Instruct-v7"), which may have another shape: not matched
    flat = name.replace("_", "-")
    for key, canonical in _sized_names():
        m = re.search(rf"(?<![^-]){re.escape(key)}(?![^-])", flat)
        if m:
            if re.fullmatch(r"-v\d+(\.\d+)*", flat[: m.start()] + flat[m.end():]):
                break
            return canonical, True
    raise _unknown(model_id)


def _unknown(model_id: str) -> UnknownNameError:
    return UnknownNameError("model", model_id, sorted({e["id"] for e in _index().values()}),
                            hint="or pass a path to a config.json")
