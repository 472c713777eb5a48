"""The user's own chips and inventory in a scenario: figures from `chips:` and a `stock:` CSV file.

    scenario_chips(scenario)      -> Chip records for the ids `chips:` gives figures for (catalog chip updated,
                                     or a chip of its own); use them with ``stockpile.catalog.chips.extra_chips``
    read_stock_csv(path, ...)     -> the `stock:` list from a CSV with columns chip,count,age_months,cluster
                                     (``acquired`` as YYYY-MM may replace age_months; cluster optional)

Errors name the file and line: ``stock (inventory.csv, line 4): count 'abc' is not a whole number``.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stockpile.catalog.chips import Chip, figure_fields, get_chip, list_chips
from stockpile.errors import InputError, UnknownNameError
from stockpile.fleet.months import parse_month

if TYPE_CHECKING:
    from stockpile.fleet.scenario import Scenario

__all__ = ["STOCK_COLUMNS", "raw_user_chip_ids", "read_stock_csv", "scenario_chips"]

STOCK_COLUMNS = ("chip", "count", "age_months", "acquired", "cluster")


def scenario_chips(scenario: Scenario) -> list[Chip]:
    """A Chip for every `chips:` entry with figures: the catalog chip (or a user chip already in
    ``extra_chips``) with those figures replaced, or, for an id the catalog lacks, a chip of its own (family
    "user", vendor and name the id unless given). Entries with only power_w/source give none."""
    out: list[Chip] = []
    for key, ov in scenario.chips.items():
        figs = ov.figures()
        if not figs:
            continue
        cid = key.strip().lower()
        names = {k: v for k, v in (("vendor", ov.vendor), ("name", ov.name), ("family", ov.family)) if v}
        try:
            base: Chip | None = get_chip(cid)
        except UnknownNameError:
            base = None
        if base is not None:
            out.append(base.model_copy(update={**figs, **names}))
        else:
            new = Chip(id=cid, vendor=ov.vendor or key.strip(), name=ov.name or key.strip(),
                       family=ov.family or "user")
            out.append(new.model_copy(update=figs))
    return out


def raw_user_chip_ids(chips: Any) -> set[str]:
    """Lower-case ids a raw (not yet validated) `chips:` mapping gives at least one figure for."""
    if not isinstance(chips, dict):
        return set()
    figs = set(figure_fields())
    return {str(k).strip().lower() for k, v in chips.items() if isinstance(v, dict) and figs & set(v)}


def _whole(text: str, what: str) -> int:
    t = text.strip().replace("_", "")
    try:
        v = float(t)
    except ValueError:
        raise ValueError(f"{what} '{text}' is not a whole number") from None
    if not math.isfinite(v) or v != int(v):
        raise ValueError(f"{what} '{text}' is not a whole number")
    if v < 0:
        raise ValueError(f"{what} {int(v)} is negative; give 0 or more")
    return int(v)


def read_stock_csv(path: str | Path, *, base_dir: str | Path | None = None,
                   user_chips: Iterable[str] = ()) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The `stock:` list from a CSV file, and for each item the ' (file, line N)' it came from.

    A relative path is read from `base_dir` (the scenario file's folder; blank: the current directory).
    `user_chips` are ids the scenario's `chips:` defines (accepted besides the catalog's). Raises InputError
    (UnknownNameError for an unknown chip, with the catalog's suggestions) naming the file and line."""
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = Path(base_dir or Path.cwd()) / p
    name = p.name
    if not p.is_file():
        raise InputError("stock", f"CSV file not found: {p} (a relative path is read from the scenario file's "
                         "folder, or the current directory for a scenario not read from a file)")
    users = {u.strip().lower() for u in user_chips}
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("stock", f"cannot read {p}: {exc}") from None
    reader = csv.reader(text.splitlines())
    header: list[str] | None = None
    items: list[dict[str, Any]] = []
    origins: dict[int, str] = {}
    cols = "chip, count, age_months (or acquired as YYYY-MM), cluster (optional)"
    for row in reader:
        line = reader.line_num
        where = f"stock ({name}, line {line})"
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower() for c in row]
            unknown = [c for c in header if c not in STOCK_COLUMNS]
            if unknown:
                raise InputError(where, f"unknown column '{unknown[0]}'; the columns are {cols}")
            dup = [c for c in set(header) if header.count(c) > 1]
            if dup:
                raise InputError(where, f"column '{dup[0]}' appears twice")
            missing = [c for c in ("chip", "count") if c not in header]
            if not ("age_months" in header or "acquired" in header):
                missing.append("age_months (or acquired)")
            if missing:
                raise InputError(where, f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                                 f"the first line names the columns: {cols}")
            continue
        if len(row) > len(header):
            raise InputError(where, f"{len(row)} fields, but the header names {len(header)} columns ({cols}); "
                             "quote a value that holds a comma")
        rec = {c: (row[i].strip() if i < len(row) else "") for i, c in enumerate(header)}
        chip = rec["chip"]
        if not chip:
            raise InputError(where, "chip is blank; give a chip id (stockpile catalog chips)")
        if chip.lower() not in users:
            try:
                get_chip(chip)
            except UnknownNameError:
                err = UnknownNameError("chip", chip, [c.id for c in list_chips()] + sorted(users),
                                       hint="see `stockpile catalog chips`, or give its figures in the scenario's "
                                       "chips: section")
                err.field = where
                err.args = (f"{where}: {str(err.args[0]).split(': ', 1)[-1]}",)
                raise err from None
        try:
            if not rec["count"]:
                raise ValueError("count is blank; give the number of chips on hand")
            item: dict[str, Any] = {"chip": chip, "count": _whole(rec["count"], "count")}
            age, acq = rec.get("age_months", ""), rec.get("acquired", "")
            if age and acq:
                raise ValueError(f"give age_months ({age}) or acquired ({acq}), not both")
            if age:
                item["age_months"] = _whole(age, "age_months")
            elif acq:
                item["acquired"] = parse_month(acq)
            item["cluster"] = rec.get("cluster") or "default"
        except ValueError as exc:
            raise InputError(where, str(exc)) from None
        origins[len(items)] = f" ({name}, line {line})"
        items.append(item)
    if header is None:
        raise InputError("stock", f"{name} is empty; its first line names the columns: {cols}")
    return items, origins
