"""`stockpile calibrate`: refit the model to measured rows and write a named profile (never into the package)."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Optional


def _status(console: Any, quiet: bool, text: str) -> Any:
    return contextlib.nullcontext() if quiet else console.status(text)


def calibrate_command(files: Optional[list[Path]], profile: str, out_path: Optional[Path], training: bool, full: bool,
                      json_out: bool) -> None:
    from stockpile import profiles
    from stockpile.atomic import check_output_path
    from stockpile.cli_render import emit_json, out
    from stockpile.errors import InputError
    dest = out_path if out_path is not None else profiles.profile_path(profile, training=training)
    check_output_path(dest, "out")                     # before minutes of fitting
    if training:
        from stockpile.calibration.fit_training import main as fit_training
        with _status(out, json_out, "fitting the training model (with leave-one-source-out) ..."):
            report = fit_training(paths=files or None, dest=dest)
        if json_out:
            emit_json({"written": str(dest), **report})
        else:
            out.print(f"training calibration written to {dest}; median |error| "
                      f"{report.get('median_ape_after', '?')}; use it with --calibration "
                      f"{profile if out_path is None else dest}")
        return
    from stockpile.calibration.fit_inference import default_files, fit, write_calibration
    from stockpile.perf.calibration import load_calibration
    paths = files or default_files()
    for pth in paths:
        if not Path(pth).is_file():
            raise InputError("files", f"not a file: {pth}")
    use = profile if out_path is None else dest
    if files and not full:
        from stockpile.calibration.fit_profile import fit_profile
        with _status(out, json_out, "refitting the regimes your runs cover ..."):
            cal, report = fit_profile(paths, load_calibration())
        dest = write_calibration(cal, dest)
        if json_out:
            emit_json({"written": str(dest), **report})
            return
        held = ("held-out runs: median |error| "
                f"{100 * report['held_out_median_ape_before']:.1f}% -> {100 * report['held_out_median_ape_after']:.1f}% "
                f"({report['held_out_rows']} rows of {report['held_out_load_points']} load points)"
                if "held_out_median_ape_before" in report else report.get("note", ""))
        out.print(f"refitted {', '.join(report['regimes'])} on {report['rows']} rows: {held}; all rows "
                  f"{100 * report['median_ape_before']:.1f}% -> {100 * report['median_ape_after']:.1f}%. "
                  + (report.get("kept_shipped", "") + " " if report.get("kept_shipped") else "")
                  + f"Wrote {dest}; use it with --calibration {use}", highlight=False)
        return
    with _status(out, json_out, "fitting efficiency parameters ..."):
        cal, report = fit(paths, start=load_calibration())     # from the last fit (see calibrate.fit)
    dest = write_calibration(cal, dest)
    if json_out:
        emit_json({"written": str(dest), **report})
        return
    out.print(f"fitted on {report['rows']} rows from {len(paths)} files: median |error| "
              f"{100 * report['median_ape_before']:.1f}% -> {100 * report['median_ape_after']:.1f}%; wrote {dest}; "
              f"use it with --calibration {use}")
