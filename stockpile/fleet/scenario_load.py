"""Loading a scenario: YAML (or a dict) -> a validated :class:`Scenario`, with the line of every field for
messages (``stock[2].count (scenario.yaml, line 12)``), a `stock:` CSV file read in place, and the checks that
need the catalogs or several fields at once (known chip and model ids, clusters, months, generation order)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from stockpile.errors import DataError, InputError, UnknownNameError
from stockpile.fleet.months import month_index
from stockpile.fleet.scenario import MAX_UNCERTAIN_EVENTS, Scenario
from stockpile.yaml_lines import line_map

__all__ = ["Loaded", "check_scenario", "field_path", "load_scenario", "user_chip_ids"]


# ------------------------------------------------------------------ loading with line numbers


def field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "scenario"


def _where(source: str, lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> str:
    """' (file.yaml, line 12)' for the deepest part of `loc` found in the file, else ''."""
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return f" ({source}, line {lines[loc[:n]]})"
    return ""


def _origin(origins: dict[tuple[Any, ...], str], loc: tuple[Any, ...]) -> str:
    for n in range(len(loc), 0, -1):
        if loc[:n] in origins:
            return origins[loc[:n]]
    return ""


def _stock_from_csv(data: dict[str, Any], base_dir: Path | None, source: str,
                    lines: dict[tuple[Any, ...], int]) -> tuple[dict[str, Any], dict[tuple[Any, ...], str]]:
    """`stock: inventory.csv` -> the list it stands for (before validation), and where each item came from."""
    if not isinstance(data.get("stock"), str):
        return data, {}
    from stockpile.fleet.chips_in import raw_user_chip_ids, read_stock_csv
    try:
        items, rows = read_stock_csv(data["stock"], base_dir=base_dir,
                                     user_chips=raw_user_chip_ids(data.get("chips")))
    except InputError as exc:
        if exc.field == "stock":                    # no file line to give: point at the scenario's stock: line
            exc.args = (str(exc.args[0]) + _where(source, lines, ("stock",)),)
        raise
    return {**data, "stock": items}, {("stock", i): where for i, where in rows.items()}


class Loaded:
    """A validated scenario plus where its fields sit in the source file."""

    def __init__(self, scenario: Scenario, source: str, lines: dict[tuple[Any, ...], int],
                 origins: dict[tuple[Any, ...], str] | None = None):
        self.scenario, self.source, self.lines = scenario, source, lines
        self.origins = origins or {}       # loc prefix -> ' (inventory.csv, line 4)': items read from another file

    def where(self, loc: tuple[Any, ...]) -> str:
        return _origin(self.origins, loc) or _where(self.source, self.lines, loc)

    def error(self, loc: tuple[Any, ...], message: str) -> InputError:
        return InputError(field_path(loc), message + self.where(loc))


MAX_SCENARIO_BYTES = 5_000_000   # a scenario's YAML (a large inventory belongs in a stock CSV)
MAX_YAML_NODES = 2_000_000       # values after alias expansion: a "billion laughs" bomb multiplies them


def _expanded_size(node: Any) -> int:
    """How many values a YAML node graph holds once aliases (shared nodes) are expanded; memoised, so a bomb
    is measured without being expanded."""
    memo: dict[int, int] = {}

    def size(n: Any) -> int:
        if n is None:
            return 0
        key = id(n)
        if key in memo:
            return memo[key]
        memo[key] = 1                              # a cycle counts once
        if isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        else:
            total = 1
        memo[key] = total
        return total
    return size(node)


def load_scenario(src: str | Path | dict[str, Any] | Scenario) -> Loaded:
    """Read and validate a scenario from a YAML path, YAML text, a dict or a Scenario; check names too."""
    if isinstance(src, Scenario):
        loaded = Loaded(src, "scenario", {})
        check_scenario(loaded)
        return loaded
    lines: dict[tuple[Any, ...], int] = {}
    source = "scenario"
    base_dir: Path | None = None          # a relative stock CSV path is read from here (blank: the current dir)
    if isinstance(src, dict):
        data: Any = src
    else:
        text_or_path = str(src)
        p = Path(text_or_path)
        if "\n" not in text_or_path and (p.suffix in (".yaml", ".yml", ".json") or p.exists()):
            if not p.exists():
                raise InputError("scenario", f"file not found: {p}")
            if p.is_dir():
                raise InputError("scenario", f"{p} is a folder; give a scenario YAML file")
            if p.stat().st_size > MAX_SCENARIO_BYTES:
                raise InputError("scenario", f"{p.name} is {p.stat().st_size:,} bytes; a scenario is at most "
                                             f"{MAX_SCENARIO_BYTES:,} (put a large stock in a CSV: stock: file.csv)")
            try:
                text = p.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise InputError("scenario", f"{p.name} is not UTF-8 text; give a scenario YAML file") from None
            except OSError as exc:
                raise InputError("scenario", f"cannot read {p}: {exc.strerror or exc}") from None
            source, base_dir = p.name, p.resolve().parent
        else:
            text = text_or_path
        try:
            try:
                size = _expanded_size(yaml.compose(text, Loader=yaml.SafeLoader))
            except RecursionError:
                raise InputError("scenario", f"{source} is nested too deeply to be a scenario") from None
            if size > MAX_YAML_NODES:
                raise InputError("scenario", f"{source} expands to {size:,} YAML values through its aliases (*name); "
                                             f"at most {MAX_YAML_NODES:,} (an alias bomb?)")
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" ({source}, line {mark.line + 1})" if mark else ""
            raise DataError(f"scenario is not valid YAML: {getattr(exc, 'problem', exc)}{at}") from None
        lines = line_map(text)
    if not isinstance(data, dict):
        raise InputError("scenario", "must be a mapping with start, stock, ... (see `stockpile plan --schema`)")
    data, origins = _stock_from_csv(data, base_dir, source, lines)
    try:
        scn = Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"].removeprefix("Value error, ")
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InputError(field_path(loc), msg + more + (_origin(origins, loc) or _where(source, lines, loc))) from None
    loaded = Loaded(scn, source, lines, origins)
    check_scenario(loaded)
    return loaded


def _located(exc: UnknownNameError, loaded: Loaded, loc: tuple[Any, ...]) -> UnknownNameError:
    """The catalog's error, re-pointed at the scenario field and line."""
    text = str(exc.args[0]).split(": ", 1)[-1]
    exc.field = field_path(loc)
    exc.args = (f"{exc.field}: {text}{loaded.where(loc)}",)
    return exc


def user_chip_ids(s: Scenario) -> set[str]:
    """Lower-case ids the scenario's `chips:` section gives figures for (chips of their own, or catalog chips
    with figures replaced); ``stockpile.fleet.chips_in.scenario_chips`` turns them into Chip records."""
    return {k.strip().lower() for k, ov in s.chips.items() if ov.figures()}


def _check_chip(loaded: Loaded, loc: tuple[Any, ...], chip_id: str) -> None:
    from stockpile.catalog import get_chip, list_chips
    users = user_chip_ids(loaded.scenario)
    if chip_id.strip().lower() in users:
        return
    try:
        get_chip(chip_id)
    except UnknownNameError as exc:
        err = exc if not users else UnknownNameError("chip", chip_id, [c.id for c in list_chips()] + sorted(users),
                                                      hint="see `stockpile catalog chips`")
        raise _located(err, loaded, loc) from None


def check_scenario(loaded: Loaded) -> None:
    """Cross-field checks: known chip and model ids, clusters, months inside the horizon, generation order."""
    from stockpile.catalog import get_chip, get_model
    s = loaded.scenario
    start, end = s.start_index, s.start_index + s.horizon_months
    clusters = {c.id for c in s.clusters}
    for i, it in enumerate(s.stock):
        _check_chip(loaded, ("stock", i, "chip"), it.chip)
        if clusters and it.cluster not in clusters:
            raise loaded.error(("stock", i, "cluster"), f"unknown cluster '{it.cluster}'; clusters are "
                               + ", ".join(sorted(clusters)))
        if it.acquired and month_index(it.acquired) > start:
            raise loaded.error(("stock", i, "acquired"), f"{it.acquired} is after the start {s.start}; "
                               "future deliveries belong in procurement")
    for i, o in enumerate(s.procurement):
        _check_chip(loaded, ("procurement", i, "chip"), o.chip)
        if o.cluster and clusters and o.cluster not in clusters:
            raise loaded.error(("procurement", i, "cluster"), f"unknown cluster '{o.cluster}'")
        if o.available_from and o.available_until and o.available_until < o.available_from:
            raise loaded.error(("procurement", i, "available_until"), "is before available_from")
    for i, ev in enumerate(s.policy_events):
        if ev.chip is not None:
            _check_chip(loaded, ("policy_events", i, "chip"), ev.chip)
    uncertain = [i for i, ev in enumerate(s.policy_events) if 0 < ev.probability < 1]
    if len(uncertain) > MAX_UNCERTAIN_EVENTS:
        raise loaded.error(("policy_events", uncertain[MAX_UNCERTAIN_EVENTS], "probability"),
                           f"{len(uncertain)} events have 0 < probability < 1; at most {MAX_UNCERTAIN_EVENTS} are "
                           f"combined into policy worlds ({2 ** MAX_UNCERTAIN_EVENTS}); make the others certain "
                           "(probability 0 or 1) or split the scenario")
    seen: dict[tuple[str, str], tuple[int, str]] = {}
    for i, ev in enumerate(s.policy_events):
        if ev.chip is None:
            continue
        key = (ev.chip.lower(), ev.date)
        if key in seen and seen[key][1] != ev.effect and ev.probability == 1 == s.policy_events[seen[key][0]].probability:
            raise loaded.error(("policy_events", i, "effect"), f"policy_events[{seen[key][0]}] gives {ev.chip} "
                               f"'{seen[key][1]}' in the same month {ev.date}; events apply in date order, so two "
                               "certain events of opposite effect in one month contradict each other: date one "
                               "of them a month later")
        seen[key] = (i, ev.effect)
    seen_ids: dict[str, str] = {}
    for cid, ov in s.chips.items():
        if cid.strip().lower() in seen_ids:
            raise loaded.error(("chips", cid), f"'{cid}' and '{seen_ids[cid.strip().lower()]}' name the same chip "
                               "(ids are case-insensitive); merge them")
        seen_ids[cid.strip().lower()] = cid
        if not cid.strip():
            raise loaded.error(("chips", cid), "a chip id may not be blank")
        if not ov.figures():
            try:
                get_chip(cid)
            except UnknownNameError as exc:
                exc.args = (f"{exc.args[0]}; to plan a chip the catalog lacks, give its figures here as {{value, "
                            "source} records (memory_gb, memory_bw_gbs, bf16_tflops, tdp_w, ...)",)
                raise _located(exc, loaded, ("chips", cid)) from None
    for mid in s.attrition.chip_multiplier:
        _check_chip(loaded, ("attrition", "chip_multiplier", mid), mid)
    for r_i, r in enumerate(s.costs.rental):
        _check_chip(loaded, ("costs", "rental", r_i, "chip"), r.chip)
    names = [g.name for g in s.training.generations]
    for i, g in enumerate(s.training.generations):
        loc = ("training", "generations", i)
        if g.model:
            try:
                get_model(g.model)
            except UnknownNameError as exc:
                raise _located(exc, loaded, loc + ("model",)) from None
        for j, c in enumerate(g.chips or []):
            _check_chip(loaded, loc + ("chips", j), c)
        if month_index(g.deadline) < start:
            raise loaded.error(loc + ("deadline",), f"deadline {g.deadline} is before the scenario start {s.start}")
        if g.earliest_start and month_index(g.earliest_start) >= end:
            raise loaded.error(loc + ("earliest_start",), f"{g.earliest_start} is after the horizon")
        if g.after is not None and (g.after not in names or g.after == g.name):
            raise loaded.error(loc + ("after",), f"'{g.after}' is not another generation; generations are "
                               + ", ".join(names))
        if g.clusters and clusters:
            for j, c in enumerate(g.clusters):
                if c not in clusters:
                    raise loaded.error(loc + ("clusters", j), f"unknown cluster '{c}'")
    if len(set(names)) != len(names):
        raise loaded.error(("training", "generations"), "generation names must be unique")
    after = {g.name: g.after for g in s.training.generations}
    for i, g in enumerate(s.training.generations):
        chain, cur = [g.name], g.after
        while cur is not None:
            if cur in chain:
                raise loaded.error(("training", "generations", i, "after"), "circular dependency: "
                                   + " -> ".join(chain + [cur]) + "; one generation must come first")
            chain.append(cur)
            cur = after.get(cur)
    lad = s.training.ladder
    if lad is not None:
        for j, c in enumerate(lad.chips or []):
            _check_chip(loaded, ("training", "ladder", "chips", j), c)
    wnames = [w.name for w in s.inference]
    if len(set(wnames)) != len(wnames):
        raise loaded.error(("inference",), "workload names must be unique")
    for i, w in enumerate(s.inference):
        try:
            get_model(w.model)
        except UnknownNameError as exc:
            raise _located(exc, loaded, ("inference", i, "model")) from None
        for j, c in enumerate(w.chips or []):
            _check_chip(loaded, ("inference", i, "chips", j), c)
        for c in w.throughput_per_gpu:
            _check_chip(loaded, ("inference", i, "throughput_per_gpu", c), c)
        for j, pair in enumerate(w.chip_pairs):
            _check_chip(loaded, ("inference", i, "chip_pairs", j, "prefill"), pair.prefill)
            _check_chip(loaded, ("inference", i, "chip_pairs", j, "decode"), pair.decode)
    if not s.stock and not s.procurement:
        raise loaded.error(("stock",), "the scenario has no chips: give a stock or procurement options")
