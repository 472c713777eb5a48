"""Does an engine host term hold up on aiconfigurator runs the fit has not seen? (issue 13)

    .venv/bin/python bench/aic_split.py                       # all three splits, about 5 minutes on 2 cores
    .venv/bin/python bench/aic_split.py --by run --term stream_s

The rows of `aic_silicon_sample.csv` are split in two halves by a CRC-32 of a key: the run (`run`: a run's TTFT
and TPOT stay together; the held-out 75 % of NVIDIA's dataset are other runs of mostly the same sweeps), the
sweep (`group`: model, chip, engine and lengths) or the model (`model`). For each half, the engines' fixed time to
a first token (`ttft_s`) and the term under test (`--term`, default `stream_s`: a closed-loop client's lag per
request in flight) of vLLM, SGLang and TensorRT-LLM are refitted from the shipped calibration on every shipped
file without that half (at most 60 evaluations), and the half is predicted. Beside it, the same without the term
(held at 1e-7 s, `ttft_s` refitted alone). Prints the median |error| of the held-out half (all rows, and TTFT)
and, for scale, the shipped calibration's on the same rows (fitted on everything).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import zlib

ENGINES = ("vllm", "sglang", "trtllm")


def half_of(case, by: str) -> int:
    key = {"run": case.row_id, "model": case.model,
           "group": f"{case.model}|{case.chip}|{case.engine}|{case.isl:.0f}|{case.osl:.0f}"}[by]
    return zlib.crc32(key.encode()) % 2


def main(argv: list[str] | None = None) -> None:
    from stockpile.calibration.fit_inference import default_files, fit
    from stockpile.calibration.inference import Batch, Prepared, prepare_file
    from stockpile.perf.calibration import load_calibration

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--by", choices=("run", "group", "model"), action="append",
                    help="how to split (repeatable; default: run, group and model)")
    ap.add_argument("--term", default="stream_s", help="the engine parameter under test (default stream_s)")
    args = ap.parse_args(argv)
    files = default_files()
    aic = next(p for p in files if p.name == "aic_silicon_sample.csv")
    preps = [p for p in prepare_file(aic)[2] if isinstance(p, Prepared)]
    shipped = load_calibration()

    def score(cal, rows: list) -> tuple[float, float]:
        pred = Batch(rows, simulate=True).run(cal)
        err = [abs(y / r.case.measured - 1.0) for r, y in zip(rows, pred)]
        ttft = [e for e, r in zip(err, rows) if r.case.metric == "ttft_ms"]
        return statistics.median(err), statistics.median(ttft)

    print(f"| split | half | rows | shipped (fitted on all) | held out, with {args.term} | held out, without |")
    print("|---|---|---:|---:|---:|---:|")
    for by in args.by or ["run", "group", "model"]:
        for half in (0, 1):
            rows = [r for r in preps if half_of(r.case, by) == half]
            ids = {r.case.row_id for r in rows}

            def excluded(case, ids=ids) -> bool:
                return case.row_id in ids

            out = []
            for with_term in (True, False):
                start = copy.deepcopy(shipped)
                names = ("ttft_s", args.term) if with_term else ("ttft_s",)
                if not with_term:
                    for e in ENGINES:
                        start.engines.setdefault(e, {})[args.term] = 1e-7
                cal, _ = fit(files, start=start, exclude=excluded, max_nfev=60,
                             free=lambda s, k, n, names=names: s == "engines" and k in ENGINES and n in names)
                out.append(score(cal, rows))
            base = score(shipped, rows)
            (w, tw), (wo, two) = out
            print(f"| {by} | {half} | {len(rows)} | {base[0]:.1%} (TTFT {base[1]:.1%}) | {w:.1%} (TTFT {tw:.1%}) "
                  f"| {wo:.1%} (TTFT {two:.1%}) |", flush=True)


if __name__ == "__main__":
    main()
