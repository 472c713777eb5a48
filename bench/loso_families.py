"""Leave one model family out, and one chip family out (issue 13: "the same by model family and by chip family").

    .venv/bin/python bench/loso_families.py            # both; about 30-40 minutes on 2 cores
    .venv/bin/python bench/loso_families.py chip_family --jobs 2 --log chip_family.jsonl

For each model architecture family (HF model_type) and each chip calibration family with at least 10 rows in the
shipped inference files: refit every parameter without its rows (from the shipped calibration, at most 40
evaluations per least-squares stage), predict them, and print the median |error| on rows the fit never saw,
beside the same rows' error under the shipped fit. Results go to stdout (docs/validation.md by hand).
"""
from __future__ import annotations

import statistics
import time

from stockpile.calibration.fit_inference import (
    chip_family_of,
    default_files,
    leave_one_source_out,
    model_family_of,
)
from stockpile.calibration.rows import read_rows
from stockpile.calibration.validate import validate_file
from stockpile.perf.calibration import load_calibration


def shipped_errors(by: str) -> dict[str, float]:
    """Median |error| per group under the shipped calibration (the in-sample figure beside the held-out one)."""
    key_of = (lambda r: model_family_of(r.get("model", ""))) if by == "model_family" else \
        (lambda r: chip_family_of(r.get("accelerator", "")))
    errs: dict[str, list[float]] = {}
    for path in default_files():
        _, rows = read_rows(path)
        group = {(r.get("id", ""), r.get("metric", "")): key_of(r) for r in rows}
        for r in validate_file(path)["rows"]:
            if r["status"] == "ok":
                errs.setdefault(group[(r["id"], r["metric"])], []).append(abs(r["error"]))
    return {k: statistics.median(v) for k, v in errs.items()}


def arguments(argv: list[str] | None = None) -> tuple[list[str], int]:
    """The groupings to hold out and the processes to use, from the command line (exit 2 with the known names on a
    mistyped grouping)."""
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    # No `choices=` on a nargs="*" positional: Python 3.11's argparse checks the empty default against them and
    # refuses a plain run ("invalid choice: []"), so the names are checked here.
    known = ["model_family", "chip_family", "publication", "source"]
    ap.add_argument("kinds", nargs="*", metavar="KIND",
                    help=f"groupings to hold out one at a time, of {', '.join(known)} (default: model_family "
                         "chip_family)")
    ap.add_argument("--jobs", type=int, default=1, help="refits run in this many processes (default 1)")
    ap.add_argument("--log", metavar="FILE.jsonl", help="append each group's result, with its held-out rows, to FILE")
    ap.add_argument("--resume", action="store_true",
                    help="with --log: skip the groups FILE already holds and report them with the new ones (an "
                         "interrupted run goes on where it stopped)")
    args = ap.parse_args(argv)
    if args.resume and not args.log:
        ap.error("--resume needs --log FILE.jsonl (the log to go on from)")
    kinds = args.kinds or ["model_family", "chip_family"]
    unknown = [k for k in kinds if k not in known]
    if unknown:
        ap.error(f"unknown grouping {unknown[0]!r}: choose from {', '.join(known)}")
    if args.jobs < 1:
        ap.error("--jobs: at least 1 process")
    return kinds, args.jobs, args.log, args.resume


def logged(log: str | None, by: str) -> dict[str, dict]:
    """The results a log already holds for grouping `by` (the last line wins for a group logged twice)."""
    import json
    from pathlib import Path
    if not log or not Path(log).exists():
        return {}
    out: dict[str, dict] = {}
    for line in Path(log).read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            if rec.get("by") == by:
                out[rec["key"]] = {k: v for k, v in rec.items() if k not in ("by", "key")}
    return out


def main(argv: list[str] | None = None) -> None:
    import json
    import sys
    kinds, jobs, log, resume = arguments(argv)
    for by in kinds:
        t0 = time.perf_counter()

        def progress(key: str, r: dict, by: str = by, t0: float = t0) -> None:  # each group as its refit ends
            med = "-" if r["median_ape"] is None else f"{100 * r['median_ape']:.1f} %"
            print(f"  {by} {key}: {r['n']} rows, held out {med} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr,
                  flush=True)
            if log:     # the held-out rows too: bench/band_heldout.py --from-log scores a band rule on them
                with open(log, "a") as fh:
                    fh.write(json.dumps({"by": by, "key": key, **r}) + "\n")

        done = logged(log, by) if resume else {}
        if done:
            print(f"  {by}: {len(done)} groups from {log}, not refitted", file=sys.stderr, flush=True)
        controls: dict[str, float | None] = {}
        res = leave_one_source_out(default_files(), start=load_calibration(), by=by, control=True, jobs=jobs,
                                   on_result=progress, skip=set(done), on_control=controls.update)
        for k, v in done.items():   # the control refit covers every group, the logged ones too
            v.setdefault("median_ape_control", controls.get(k))
        res = {**done, **res}
        inside = shipped_errors(by)
        meds = [v["median_ape"] for v in res.values() if v["median_ape"] is not None]
        print(f"\n{by}: {len(res)} groups, {time.perf_counter() - t0:.0f} s; median of the held-out medians "
              f"{100 * statistics.median(meds):.1f} %, worst {100 * max(meds):.1f} %")
        print(f"| {by.replace('_', ' ')} | rows | predicted | median APE held out | control (refit, nothing held "
              "out) | shipped | held out inside the band |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for k, v in sorted(res.items(), key=lambda kv: -kv[1]["n"]):
            held = "-" if v["median_ape"] is None else f"{100 * v['median_ape']:.1f}%"
            cov = "-" if v.get("band_coverage") is None else f"{100 * v['band_coverage']:.1f}%"
            ctl = "-" if v.get("median_ape_control") is None else f"{100 * v['median_ape_control']:.1f}%"
            print(f"| {k} | {v['n']} | {v['n_predicted']} | {held} | {ctl} | {100 * inside.get(k, float('nan')):.1f}% | "
                  f"{cov} |", flush=True)


if __name__ == "__main__":
    main()
