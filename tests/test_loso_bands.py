"""Leave one publication out reports the held-out error and how often the held-out measurements fall in the band."""
from __future__ import annotations

import csv
from pathlib import Path

from stockpile.calibration.fit_inference import leave_one_source_out, publication_of

ADDED = Path(__file__).resolve().parents[1] / "stockpile" / "data" / "measurements" / "inference_added.csv"


def test_each_publication_held_out_gets_its_error_and_band_coverage(tmp_path: Path) -> None:
    rows = list(csv.DictReader(ADDED.open()))
    pubs: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        pubs.setdefault(publication_of(r), []).append(r)
    picked = [rs[:12] for _, rs in sorted(pubs.items(), key=lambda kv: -len(kv[1]))[:2]]
    small = tmp_path / "two_publications.csv"
    with small.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for rs in picked:
            w.writerows(rs)
    res = leave_one_source_out([small], max_nfev=1, by="publication")
    assert len(res) == 2
    for v in res.values():
        assert v["n"] == 12 and v["n_predicted"] >= 1
        assert 0.0 <= v["median_ape"] < 5.0
        assert v["band_coverage"] is not None and 0.0 <= v["band_coverage"] <= 1.0


def test_refit_from_a_calibration_moves_only_what_it_sets() -> None:
    from stockpile.calibration.fit_inference import set_in
    from stockpile.perf.calibration import load_calibration
    cal = load_calibration()
    free = set_in(cal)
    assert free("global", "", next(iter(cal.global_)))
    fam, vals = next(iter(cal.families.items()))
    assert free("families", fam, next(iter(vals)))
    assert not free("families", "no-such-family", "gemm_eff")
    eng = next(e for e, v in cal.engines.items() if "moe_eff" not in v)
    assert not free("engines", eng, "moe_eff")


def test_control_refit_with_nothing_held_out_is_reported(tmp_path: Path) -> None:
    from stockpile.perf.calibration import load_calibration
    rows = list(csv.DictReader(ADDED.open()))
    pubs: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        pubs.setdefault(publication_of(r), []).append(r)
    picked = [rs[:12] for _, rs in sorted(pubs.items(), key=lambda kv: -len(kv[1]))[:2]]
    small = tmp_path / "two_publications.csv"
    with small.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for rs in picked:
            w.writerows(rs)
    start = load_calibration()
    res = leave_one_source_out([small], max_nfev=1, by="publication", start=start, control=True)
    assert len(res) == 2
    for v in res.values():
        assert v["median_ape_control"] is not None and 0.0 <= v["median_ape_control"] < 5.0
        assert v["median_ape"] is not None


def test_parameters_on_a_bound_are_flagged() -> None:
    from stockpile.calibration.fit_inference import BOUNDS, on_bounds
    from stockpile.perf.calibration import Calibration
    lo, hi = BOUNDS["mem_eff"]
    cal = Calibration(global_={"comm_eff": 0.5}, families={"hopper": {"mem_eff": hi, "gemm_eff": 0.7},
                                                           "ampere": {"mem_eff": lo}},
                      engines={"vllm": {"seq_s": 5e-6}}, meta={}, regimes={})
    hits = {name: side for name, _, _, side in on_bounds(cal)}
    assert hits == {"hopper.mem_eff": "upper", "ampere.mem_eff": "lower"}
