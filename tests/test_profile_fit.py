"""`calibrate --profile NAME runs.csv`: only the regimes the runs cover move, never worse on held-out runs."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stockpile.calibration.fit_profile import fit_profile
from stockpile.calibration.inference import Batch, Prepared, prepare_file
from stockpile.cli import app
from stockpile.perf.calibration import load_calibration, read_calibration, regime_key

runner = CliRunner()
SHIPPED = Path(__file__).resolve().parents[1] / "stockpile" / "data" / "measurements" / "inference_measurements.csv"


def _runs(tmp_path: Path, pick, n: int = 40, source_url: str | None = None) -> Path:  # type: ignore[no-untyped-def]
    """The first `n` shipped rows that `pick` selects as a runs file (under `source_url`, when given)."""
    rows = list(csv.DictReader(SHIPPED.open()))
    sel = [r if source_url is None else {**r, "source_url": source_url} for r in rows if pick(r)][:n]
    out = tmp_path / "runs.csv"
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(sel)
    return out


def test_only_the_covered_regime_moves_and_held_out_error_does_not_grow(tmp_path: Path) -> None:
    runs = _runs(tmp_path, lambda r: r["accelerator"].startswith("h200") and r["engine"] == "vllm")
    start = load_calibration()
    cal, rep = fit_profile([runs], start)
    _, _, prepared = prepare_file(runs)
    preps = [p for p in prepared if isinstance(p, Prepared)]
    covered = sorted({regime_key(p.chip.family, p.engine_key) for p in preps})
    assert "hopper/vllm-v0.11" in covered                  # GPUStack's vLLM 0.11 runs: their own release family
    assert rep["regimes"] == covered
    assert rep["held_out_median_ape_after"] <= rep["held_out_median_ape_before"]
    assert rep["held_out_rows"] >= 1 and rep["held_out_load_points"] >= 1
    assert cal.global_ == start.global_ and cal.engines == start.engines and cal.families == start.families
    # the covered regimes, and only they, move (new ones, or shipped ones such as the release families' own MoE
    # kernel maturity); every other shipped regime stays as it is
    moved_keys = {k for k in set(cal.regimes) | set(start.regimes) if cal.regimes.get(k) != start.regimes.get(k)}
    assert moved_keys == set(covered)
    assert all(cal.regimes[k] == v for k, v in start.regimes.items() if k not in covered)
    moved = cal.params("hopper", "vllm-v0.11")
    assert moved != start.params("hopper", "vllm-v0.11")
    for fam, eng in (("hopper", "sglang"), ("ampere", "vllm"), ("blackwell", "trtllm")):
        assert cal.params(fam, eng) == start.params(fam, eng)      # other regimes untouched
    # the held-out figures are what they say: recompute them on the rows the fit left out
    assert len(preps) == rep["rows"]
    meas = np.array([p.case.measured for p in preps])
    before = np.median(np.abs(np.array(Batch(preps, simulate=True).run(start)) / meas - 1))
    after = np.median(np.abs(np.array(Batch(preps, simulate=True).run(cal)) / meas - 1))
    assert (round(float(before), 4), round(float(after), 4)) == (rep["median_ape_before"], rep["median_ape_after"])
    assert regime_key("blackwell-ultra", "vllm") == "blackwell/vllm"


def test_a_refit_that_cannot_help_keeps_the_shipped_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every fit useless (it returns nonsense values): the profile must fall back to the start."""
    import stockpile.calibration.fit_profile as fp
    runs = _runs(tmp_path, lambda r: r["accelerator"].startswith("h200") and r["engine"] == "vllm")
    real = fp._fit

    def spoiled(preps, start, prior_weight, max_nfev):  # type: ignore[no-untyped-def]
        cal, spec, theta = real(preps, start, prior_weight, 1)
        return fp._with(start, spec, np.log([10.0 * fp.BOUNDS[n][1] for _, n in spec])), spec, theta

    monkeypatch.setattr(fp, "_fit", spoiled)
    start = load_calibration()
    cal, rep = fp.fit_profile([runs], start)
    assert "kept_shipped" in rep and cal.regimes == start.regimes
    assert rep["held_out_median_ape_after"] == rep["held_out_median_ape_before"]
    assert len(rep["tried"]) == len(fp.PRIOR_STEPS)


def test_cli_profile_round_trip_is_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOCKPILE_HOME", str(tmp_path / "home"))
    runs = _runs(tmp_path, lambda r: r["accelerator"].startswith("h200") and r["engine"] == "vllm")
    r = runner.invoke(app, ["calibrate", str(runs), "--profile", "mylab", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    written = Path(d["written"])
    assert written == tmp_path / "home" / "calibrations" / "mylab.yaml"
    mine_r, shipped_r = read_calibration(written).regimes, load_calibration().regimes
    assert {k for k in set(mine_r) | set(shipped_r) if mine_r.get(k) != shipped_r.get(k)} == set(d["regimes"])
    assert d["regimes"] and all(k.startswith("hopper/vllm") for k in d["regimes"])
    plain = json.loads(runner.invoke(app, ["validate", str(runs), "--json"]).stdout)["summary"]
    mine = json.loads(runner.invoke(app, ["validate", str(runs), "--json", "--calibration", "mylab"]).stdout)["summary"]
    assert abs(plain["median_ape"] - d["median_ape_before"]) < 1e-3       # nothing uses the profile unless asked
    assert abs(mine["median_ape"] - d["median_ape_after"]) < 1e-3
    bad = runner.invoke(app, ["calibrate", str(runs), "--profile", "../x"])
    assert bad.exit_code == 2 and "profile" in bad.output
    assert not (tmp_path / "home" / "x.yaml").exists()


def test_a_profile_states_the_in_sample_band_for_the_runs_it_was_fitted_on(tmp_path: Path) -> None:
    """A user's runs are a publication the shipped fit has not seen: validated against the shipped calibration they
    get the band for unseen data; against the profile fitted on them, the in-sample one (the profile's meta names
    the publications it was fitted on)."""
    from stockpile.calibration.bands import UNSEEN_WIDEN, WIDEN
    from stockpile.calibration.inference import validate_rows
    runs = _runs(tmp_path, lambda r: r["accelerator"].startswith("h200") and r["engine"] == "vllm", n=24,
                 source_url="https://example.org/our-h200-runs")
    rows = list(csv.DictReader(runs.open()))
    start = load_calibration()
    cal, _ = fit_profile([runs], start, max_nfev=5)
    assert cal.meta["profile"]["publications"] == ["https://example.org/our-h200-runs"]
    new = [r for r in validate_rows(rows, start) if r["status"] == "ok"]
    own = [r for r in validate_rows(rows, cal) if r["status"] == "ok"]
    assert len(new) == len(own) > 10
    for a, b in zip(new, own):
        ratio = np.log(b["predicted_p90"] / b["predicted_p10"]) / np.log(a["predicted_p90"] / a["predicted_p10"])
        assert ratio == pytest.approx(WIDEN / UNSEEN_WIDEN, rel=1e-3)
