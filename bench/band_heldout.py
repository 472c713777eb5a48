"""Are the uncertainty bands honest on data the fit never saw? (issue 13)

    .venv/bin/python bench/band_heldout.py [FOLDS]
    .venv/bin/python bench/band_heldout.py --from-log bench/results/lopo_publications_HASH.jsonl

The publications of the shipped inference files are split into FOLDS groups (default 5; a publication's group
is the CRC-32 of its source URL, so the split is the same on every machine). Each group is predicted by the
shipped calibration refitted without it (the parameters the shipped calibration sets, from their values:
fit_inference.set_in; at most 30 evaluations per stage), and each held-out measurement is checked against the
p10-p90 band the tool states with its prediction (calibration/bands.py). Prints the share inside, overall, by
file and by metric kind, next to the same share under the shipped calibration (in sample). Target: 75-85 %.
About 15 minutes on 2 cores.

With --from-log, no refit: the held-out predictions of a leave-one-publication-out log (validation_report.py
--resume writes each publication's rows) are checked against the band stated for a publication the fit has not
seen (bands.UNSEEN_WIDEN) two ways: with the shipped regime quantiles, which include the held-out publication's
own in-sample residuals, and with the quantiles rebuilt without its rows (nothing of it seen); and the widening
at which the second reaches 75 / 80 / 85 %. Seconds. With --unseen FILE.csv a file no fit uses is scored too,
alone and pooled with the log's rows: bands.UNSEEN_WIDEN is the smallest widening with 80 % of the pooled values
inside.
"""
from __future__ import annotations

import statistics
import time
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np


def fold_of(publication: str, folds: int) -> int:
    return zlib.crc32(publication.encode()) % folds


GROUPS = ("publication", "chip_family", "model_family")


def insample_records() -> list[tuple]:
    """(file, id, metric, measured, predicted, publication, chip family, model family) of every shipped inference
    row the shipped calibration predicts."""
    from stockpile.calibration.fit_inference import default_files
    return predicted_records(default_files())


def predicted_records(paths) -> list[tuple]:
    """The same tuples for every row of the inference files `paths` the shipped calibration predicts (for a file
    no fit uses, such as inference_unseen.csv, held-out values by construction)."""
    from stockpile.calibration.fit_inference import chip_family_of, model_family_of
    from stockpile.calibration.inference import Batch, Prepared, prepare_file
    from stockpile.perf.calibration import load_calibration
    cal = load_calibration()
    out = []
    for path in paths:
        ps = [p for p in prepare_file(path)[2] if isinstance(p, Prepared)]
        for p, v in zip(ps, Batch(ps).run(cal)):
            if np.isfinite(v) and v > 0:
                c = p.case
                out.append((Path(path).name, c.row_id, c.metric, c.measured, float(v), c.publication,
                            chip_family_of(c.chip), model_family_of(c.model)))
    return out


def held_out_records(log) -> tuple[str, list[tuple]]:
    """The grouping a leave-one-out log held out (a publication log, or bench/loso_families.py --log's chip or
    model families) and its held-out rows as (file, id, metric, measured, predicted, group)."""
    import json
    out, by = [], "publication"
    for line in open(log):
        rec = json.loads(line)
        by = rec.get("by", by)
        out += [(r[0], r[1], r[2], float(r[3]), float(r[4]), rec["key"]) for r in rec.get("rows", []) if r[4]]
    return by, out


def coverage_from_log(log, widths: tuple[float, ...] = (), groups: tuple[str, ...] = (),
                      unseen: tuple = ()) -> dict:
    """Held-out band coverage from a log (see the module's docstring): `shipped` (the shipped quantiles),
    `rebuilt` (quantiles without the held-out group's rows), per group, and `rebuilt` at each of `widths`
    in place of UNSEEN_WIDEN (over the rows of `groups` only, where given); `in_sample`: the shipped rows against
    their own (seen) band. `unseen`: files no fit uses (inference_unseen.csv), whose rows the shipped calibration
    predicts without having seen them: `widths_pooled` scores the log's held-out rows and theirs together, and
    `widths_unseen` theirs alone (the shipped quantiles hold nothing of them, so nothing is rebuilt)."""
    from stockpile.calibration.bands import UNSEEN_WIDEN, WIDEN, _quantiles, _shrunk, keys, regimes, table
    where = regimes()
    if unseen:
        where.update(regimes(list(unseen)))
    ins = insample_records()
    by, held = held_out_records(log)
    col = 5 + GROUPS.index(by)

    def key_list(r):
        k = where.get((r[0], r[1], r[2]))
        return keys(*k) if k else None

    def inside(r, t, widen):
        ks = key_list(r)
        b = _shrunk(t, ks, widen) if ks else None
        return None if b is None else b[0] * r[4] <= r[3] <= b[1] * r[4]

    shipped = table()
    rebuilt: dict[str, dict] = {}
    for pub in {r[5] for r in held}:
        res: dict[str, list[float]] = defaultdict(list)
        for r in ins:
            ks = key_list(r)
            if r[col] != pub and ks:
                for k in ks:
                    res[k].append(float(np.log(r[3] / r[4])))
        rebuilt[pub] = _quantiles(res)

    def share(xs):
        xs = [x for x in xs if x is not None]
        return round(statistics.fmean(xs), 4) if xs else None

    per: dict[str, tuple[int, float | None, float | None]] = {}
    for pub in sorted(rebuilt):
        rs = [r for r in held if r[5] == pub]
        per[pub] = (len(rs), share(inside(r, shipped, UNSEEN_WIDEN) for r in rs),
                    share(inside(r, rebuilt[pub], UNSEEN_WIDEN) for r in rs))
    out = {"rows": len(held), "by": by, "in_sample": share(inside(r, shipped, WIDEN) for r in ins),
           "shipped": share(inside(r, shipped, UNSEEN_WIDEN) for r in held),
           "rebuilt": share(inside(r, rebuilt[r[5]], UNSEEN_WIDEN) for r in held),
           "per_publication": per,
           "widths": {w: share(inside(r, rebuilt[r[5]], w) for r in held if not groups or r[5] in groups)
                      for w in widths}}
    if unseen:
        extra = predicted_records(unseen)
        flags = {w: [inside(r, shipped, w) for r in extra] for w in widths}
        out["unseen_rows"] = len(extra)
        out["widths_unseen"] = {w: share(flags[w]) for w in widths}
        out["widths_pooled"] = {w: share([inside(r, rebuilt[r[5]], w) for r in held] + flags[w]) for w in widths}
    return out


def training_coverage(widths: tuple[float, ...] = (), unseen: tuple = ()) -> dict:
    """The same for training: each source of the shipped training file held out (fit_training.
    leave_one_source_out), its values against the band for a source the fit has not seen, with the shipped
    quantiles and with the quantiles rebuilt without the source's rows; in sample against the seen band.
    `unseen`: training files no fit uses (training_unseen.csv), predicted with the shipped fit against the
    shipped quantiles (they hold nothing of them): `widths_unseen` alone, `widths_pooled` with the held-out
    sources' values, the pool the widening for a new source is chosen on (as for inference)."""
    import csv

    from stockpile.calibration.bands import (
        TRAIN_UNSEEN_WIDEN,
        TRAIN_WIDEN,
        _lookup,
        _quantiles,
        training_keys,
    )
    from stockpile.calibration.fit_training import default_rows, leave_one_source_out, source_weights
    from stockpile.calibration.training import Case, predict_training_rows, prepare_rows, source_of
    rows = default_rows()
    cases = prepare_rows(rows)
    ins: list[tuple[str, str, float, float, str]] = []
    # keyed by source too: the shipped file repeats some ids across sources (a row's regime is its own)
    where: dict[tuple[str, str, str], list[str]] = {}
    for row, case, rec in zip(rows, cases, predict_training_rows(rows, cases=cases)):
        if isinstance(case, Case) and rec["status"] == "ok" and rec["measured"]:
            src = source_of(row)[0]
            where[(src, row["id"], row["metric"])] = training_keys(case.job.chip.family, case.metric,
                                                                   case.job.model.is_moe)
            ins.append((row["id"], row["metric"], rec["measured"], rec["predicted"], src))
    held = [(r[0], r[1], float(r[2]), float(r[3]), src)
            for src, v in leave_one_source_out(rows).items() for r in v["rows"] if (src, r[0], r[1]) in where]

    def table(exclude: str | None = None) -> dict:
        res: dict[str, list[float]] = defaultdict(list)
        for i, m, meas, pred, src in ins:
            if src != exclude:
                for k in where[(src, i, m)]:
                    res[k].append(float(np.log(meas / pred)))
        return _quantiles(res)

    by_family: dict[str, list] = defaultdict(list)       # held-out values by chip family group
    for r in held:
        by_family[where[(r[4], r[0], r[1])][0].split("|")[0]].append(r)
    shipped = table()
    rebuilt = {src: table(src) for src in {r[4] for r in held}}

    def share(rs, t_of, widen, weighted=False):
        """Share of `rs` inside its band; `weighted`: each value weighs as the fit weighs rows (source_weights, n
        its source's values in `rs`: one publication's long table does not count as that many sources)."""
        hits, ws = [], []
        w_of = source_weights([r[4] for r in rs]) if weighted else np.ones(len(rs))
        for (i, m, meas, pred, src), w in zip(rs, w_of):
            b = _lookup(t_of(src), where[(src, i, m)], widen)
            if b is not None:
                hits.append(b[0] * pred <= meas <= b[1] * pred)
                ws.append(w)
        return round(float(np.average(hits, weights=ws)), 4) if hits else None

    extra: list[tuple[str, str, float, float, str]] = []
    for upath in unseen:
        urows = list(csv.DictReader(Path(upath).read_text().splitlines()))
        ucases = prepare_rows(urows)
        for row, case, rec in zip(urows, ucases, predict_training_rows(urows, cases=ucases)):
            if isinstance(case, Case) and rec["status"] == "ok" and rec["measured"]:
                src = f"unseen:{Path(upath).name}:{source_of(row)[0]}"
                where[(src, row["id"], row["metric"])] = training_keys(case.job.chip.family, case.metric,
                                                                       case.job.model.is_moe)
                extra.append((row["id"], row["metric"], rec["measured"], rec["predicted"], src))

    def pooled(w: float, weighted: bool = False) -> float | None:
        """The held-out sources' values (their quantiles rebuilt without them) and the unseen files' values (the
        shipped quantiles) in one pool; `weighted` as in `share`, each unseen publication a source of its own."""
        rs = held + extra
        if not rs:
            return None
        return share(rs, lambda s: shipped if s.startswith("unseen:") else rebuilt[s], w, weighted)

    return {"rows": len(held), "in_sample": share(ins, lambda s: shipped, TRAIN_WIDEN),
            "unseen_rows": len(extra),
            "widths_unseen": {w: share(extra, lambda s: shipped, w) for w in widths} if extra else {},
            "widths_pooled": {w: pooled(w) for w in widths} if extra else {},
            "widths_pooled_weighted": {w: pooled(w, True) for w in widths} if extra else {},
            "shipped": share(held, lambda s: shipped, TRAIN_UNSEEN_WIDEN),
            "rebuilt": share(held, lambda s: rebuilt[s], TRAIN_UNSEEN_WIDEN),
            "per_source": {src: (sum(r[4] == src for r in held),
                                 share([r for r in held if r[4] == src], lambda s: rebuilt[s], TRAIN_UNSEEN_WIDEN))
                           for src in sorted(rebuilt)},
            "widths": {w: share(held, lambda s: rebuilt[s], w) for w in widths},
            # the held-out values of each chip family group (its first regime key's family), quantiles rebuilt
            # without their source: where a family's own held-out sources need more than the pooled widening
            "widths_by_family": {fam: {w: share(rs, lambda s: rebuilt[s], w) for w in widths}
                                 for fam, rs in sorted(by_family.items())
                                 if len(rs) >= 15 and len({r[4] for r in rs}) >= 2}}


def main() -> None:
    import argparse

    from stockpile.calibration.bands import band, load_kind, metric_kind
    from stockpile.calibration.fit_inference import default_files, fit, set_in
    from stockpile.calibration.inference import Batch, Prepared, prepare_file
    from stockpile.perf.calibration import load_calibration
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("folds", nargs="?", type=int, default=5, help="folds of publications (default 5)")
    ap.add_argument("--from-log", metavar="FILE.jsonl", help="score a leave-one-publication-out log's rows instead")
    ap.add_argument("--unseen", metavar="FILE.csv", action="append", default=[],
                    help="with --from-log (--training): also score FILE's rows (a file no fit uses, such as "
                         "stockpile/data/measurements/inference_unseen.csv or training_unseen.csv), alone and "
                         "pooled with the held-out values")
    ap.add_argument("--training", action="store_true",
                    help="training: each source held out (about a minute), instead of the inference folds")
    args = ap.parse_args()
    if args.training:
        from stockpile.calibration.bands import TRAIN_UNSEEN_WIDEN, TRAIN_WIDEN
        widths = tuple(round(x, 2) for x in np.arange(1.0, 3.01, 0.1))
        got = training_coverage(widths, unseen=tuple(Path(u) for u in args.unseen))
        print(f"{got['rows']} held-out training rows. Inside the band for a new source (x {TRAIN_UNSEEN_WIDEN}): "
              f"{100 * got['shipped']:.1f} % with the shipped quantiles, {100 * got['rebuilt']:.1f} % with the "
              f"quantiles rebuilt without the held-out source. In sample (x {TRAIN_WIDEN}): "
              f"{100 * got['in_sample']:.1f} %.\n")
        print("| source held out | rows | inside (rebuilt) |\n|---|---:|---:|")
        for src, (n, c) in got["per_source"].items():
            print(f"| {src} | {n} | {'-' if c is None else f'{100 * c:.1f} %'} |")
        print("\nwidening (log units) -> held-out coverage, quantiles rebuilt without the source:")
        print(", ".join(f"{w:g}: {100 * c:.1f} %" for w, c in got["widths"].items() if c is not None))
        for fam, ws in got["widths_by_family"].items():
            print(f"  {fam} (its own held-out sources): "
                  + ", ".join(f"{w:g}: {100 * c:.1f} %" for w, c in ws.items() if c is not None))
        if got["unseen_rows"]:
            print(f"\n{got['unseen_rows']} rows of {', '.join(Path(u).name for u in args.unseen)} (never fitted), "
                  "widening -> inside alone | pooled with the held-out sources:")
            print(", ".join(f"{w:g}: {100 * got['widths_unseen'][w]:.1f} | {100 * got['widths_pooled'][w]:.1f} %"
                            for w in widths if got["widths_unseen"][w] is not None))
            print("\nthe same pool, each value weighing n^-0.5 (n: its source's values; each unseen publication a "
                  "source), the pool TRAIN_UNSEEN_WIDEN is chosen on:")
            print(", ".join(f"{w:g}: {100 * got['widths_pooled_weighted'][w]:.1f} %" for w in widths
                            if got["widths_pooled_weighted"][w] is not None))
        return
    if args.from_log:
        from stockpile.calibration.bands import UNSEEN_WIDEN, WIDEN
        widths = tuple(round(x, 2) for x in np.arange(1.0, 2.01, 0.05))
        got = coverage_from_log(args.from_log, widths, unseen=tuple(Path(u) for u in args.unseen))
        print(f"{got['rows']} held-out rows. Inside the band for unseen data (x {UNSEEN_WIDEN} in log units): "
              f"{100 * got['shipped']:.1f} % with the shipped quantiles, {100 * got['rebuilt']:.1f} % with the "
              f"quantiles rebuilt without the held-out {got['by'].replace('_', ' ')}. In sample (x {WIDEN}): "
              f"{100 * got['in_sample']:.1f} %.\n")
        print(f"| {got['by'].replace('_', ' ')} | held-out rows | shipped quantiles | rebuilt without it |\n"
              "|---|---:|---:|---:|")
        for pub, (n, a, b) in sorted(got["per_publication"].items(), key=lambda kv: -kv[1][0]):
            print(f"| {pub} | {n} | {'-' if a is None else f'{100 * a:.1f} %'} | "
                  f"{'-' if b is None else f'{100 * b:.1f} %'} |")
        print(f"\nwidening (log units) -> held-out coverage, quantiles rebuilt without the {got['by'].replace('_', ' ')}:")
        print(", ".join(f"{w:g}: {100 * c:.1f} %" for w, c in got["widths"].items() if c is not None))
        if args.unseen:
            print(f"\n{got['unseen_rows']} rows of {', '.join(Path(u).name for u in args.unseen)} (never fitted), "
                  "widening -> inside, alone | pooled with the held-out rows (the rule for UNSEEN_WIDEN: the smallest "
                  "widening with 80 % of the pooled values inside):")
            print(", ".join(f"{w:g}: {100 * got['widths_unseen'][w]:.1f} | {100 * got['widths_pooled'][w]:.1f} %"
                            for w in widths if got["widths_unseen"][w] is not None))
        if got["by"] == "chip_family":
            from stockpile.calibration.bands import UNSEEN_FAMILY_WIDEN, YOUNG_STACKS
            extra = tuple(round(x, 2) for x in np.arange(1.0, 2.51, 0.05))
            young = coverage_from_log(args.from_log, tuple(UNSEEN_WIDEN * m for m in extra), YOUNG_STACKS)["widths"]
            print(f"\nthe young stacks ({', '.join(YOUNG_STACKS)}): widening on top of x {UNSEEN_WIDEN} -> held-out "
                  f"coverage (shipped: x {UNSEEN_FAMILY_WIDEN}):")
            print(", ".join(f"{m:g}: {100 * c:.1f} %" for m, c in zip(extra, young.values()) if c is not None))
        return
    folds = args.folds
    ship = load_calibration()
    preps: list[tuple[str, Prepared]] = []
    for path in default_files():
        _, _, ps = prepare_file(path)
        preps += [(path.name, p) for p in ps if isinstance(p, Prepared)]

    def inside(items: list[tuple[str, Prepared]], cal) -> list[tuple[str, str, bool, float]]:
        out = []
        for (name, p), v in zip(items, Batch([p for _, p in items]).run(cal)):
            if not (np.isfinite(v) and v > 0):
                continue
            c = p.case
            b = band(p.engine_key, p.chip.family, c.metric, load_kind(c.concurrency, c.request_rate, c.num_requests))
            if b is None:
                continue
            out.append((name, metric_kind(c.metric), b[0] * v <= c.measured <= b[1] * v, abs(v / c.measured - 1)))
        return out

    t0 = time.perf_counter()
    held: list[tuple[str, str, bool, float]] = []
    for k in range(folds):
        part = [(n, p) for n, p in preps if fold_of(p.case.publication, folds) == k]
        if not part:
            continue
        cal, _ = fit(default_files(), start=ship, free=set_in(ship), max_nfev=30,
                     exclude=lambda c, k=k: fold_of(c.publication, folds) == k)
        held += inside(part, cal)
        print(f"fold {k + 1}/{folds}: {len(part)} rows held out", flush=True)
    shipped = inside(preps, ship)

    def share(rs: list[tuple[str, str, bool, float]]) -> str:
        if not rs:
            return "-"
        return (f"{100 * statistics.fmean(r[2] for r in rs):.1f} % of {len(rs)} "
                f"(median error {100 * statistics.median(r[3] for r in rs):.1f} %)")

    print(f"\n{folds} folds of publications, {(time.perf_counter() - t0) / 60:.0f} min. Inside the stated p10-p90 band:")
    print("| rows | held out | in sample (shipped calibration) |\n|---|---:|---:|")
    print(f"| all | {share(held)} | {share(shipped)} |")
    for label, idx in (("file", 0), ("metric", 1)):
        groups: dict[str, list] = defaultdict(list)
        ship_g: dict[str, list] = defaultdict(list)
        for r in held:
            groups[r[idx]].append(r)
        for r in shipped:
            ship_g[r[idx]].append(r)
        for g in sorted(groups):
            print(f"| {label} {g} | {share(groups[g])} | {share(ship_g[g])} |")
    print(f"\nheld-out median |error| {100 * statistics.median(r[3] for r in held):.1f} % "
          f"(in sample {100 * statistics.median(r[3] for r in shipped):.1f} %)")


if __name__ == "__main__":
    main()
