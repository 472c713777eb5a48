"""Estimated chip figures carry a range, and every prediction resting on them carries it in its band."""
from __future__ import annotations

import pytest

from stockpile.catalog import get_chip, get_model
from stockpile.catalog.chips import Figure
from stockpile.catalog.figure_ranges import chip_at_edge, figure_range, uncertain_speeds

SRC = "https://example.com/spec"


def test_a_published_figure_is_a_point_and_a_bound_fixes_one_side() -> None:
    assert figure_range(Figure(value=1.0, source=SRC)) == (1.0, 1.0)
    assert figure_range(Figure(value=1.0, source=SRC, note="HBM3e, vendor datasheet")) == (1.0, 1.0)
    lo, hi = figure_range(Figure(value=1.0, source=SRC, note="ESTIMATE (UPPER BOUND): the 3A090 threshold"))
    assert hi == 1.0 and lo < 0.8          # the truth is at most the figure, and the estimate mark widens below
    lo, hi = figure_range(Figure(value=1.0, source=SRC, note="DERIVED LOWER BOUND, UNVERIFIED"))
    assert lo == 1.0 and hi > 1.2
    lo, hi = figure_range(Figure(value=1.0, source=SRC, note="ESTIMATE (placeholder; nothing published)"))
    assert (lo, hi) == (0.5, 2.0)           # the widest mark wins


def test_the_edges_move_only_the_uncertain_speed_figures() -> None:
    chip = get_chip("mi308x-192gb")
    speeds = uncertain_speeds(chip)
    assert {"bf16_tflops", "memory_bw_gbs"} <= set(speeds)
    slow, fast = chip_at_edge(chip, "slow"), chip_at_edge(chip, "fast")
    assert slow.bf16_tflops.value < chip.bf16_tflops.value == fast.bf16_tflops.value   # an upper bound
    assert slow.memory_bw_gbs.value < chip.memory_bw_gbs.value < fast.memory_bw_gbs.value
    assert slow.memory_gb == chip.memory_gb                                             # capacity stays
    h100 = get_chip("h100-sxm-80gb")
    assert "bf16_tflops" not in uncertain_speeds(h100) and "memory_bw_gbs" not in uncertain_speeds(h100)
    with pytest.raises(ValueError):
        chip_at_edge(chip, "middle")


def _tpot_band(chip_id: str) -> tuple[float, list[float], str]:
    from stockpile.perf.inference import estimate
    from stockpile.perf.layout import Layout
    e = estimate(get_model("Qwen/Qwen3-32B"), get_chip(chip_id), layout=Layout(attn_tp=2), engine="vllm",
                 isl=2000, osl=500, concurrency=16)
    assert e.band is not None and e.tpot_ms is not None and e.band_note
    return e.tpot_ms, e.band["tpot_ms"], e.band_note


def test_estimate_widens_the_band_for_estimated_figures_and_unvalidated_families() -> None:
    v0, b0, n0 = _tpot_band("mi300x-192gb")      # published figures, the CDNA3 family has validated rows
    v1, b1, n1 = _tpot_band("mi308x-192gb")      # same family, figures estimated (compute at a bound)
    v2, b2, n2 = _tpot_band("kunlun-p800-96gb")  # no validated rows on its family, figures estimated
    w0, w1, w2 = b0[1] / b0[0], b1[1] / b1[0], b2[1] / b2[0]
    assert b0[0] < v0 < b0[1] and b1[0] < v1 < b1[1] and b2[0] < v2 < b2[1]
    assert w1 > 1.2 * w0 and w2 > w1
    assert "here" not in n0 and "estimated chip figures" in n1 and "no validated rows on kunlun" in n2
    # MI300X's NIC figure is marked LOW CONFIDENCE, but the chip has validated rows: the band already holds it
    from stockpile.calibration.bands import chip_validated
    assert uncertain_speeds(get_chip("mi300x-192gb")) and chip_validated("mi300x-192gb")
    assert not chip_validated("mi308x-192gb")


def test_a_new_chip_of_a_validated_family_is_not_called_unvalidated() -> None:
    """Ascend 950DT (BF16 from DeepGEMM-Ascend's stated hardware limit) is predicted; its family has validated rows
    on 910B/910C (too few per regime for a band of their own), so its band is not doubled, while its announced FP8
    peak, an upper bound, still widens it."""
    from stockpile.calibration.bands import family_seen
    assert family_seen("ascend") and not family_seen("kunlun")
    chip = get_chip("ascend-950dt-144gb")
    assert chip.peak_flops("bf16") == 432e12 and "fp8_tflops" in uncertain_speeds(chip)
    v, b, note = _tpot_band("ascend-950dt-144gb")
    assert b[0] < v < b[1] and "no validated rows" not in note
    from stockpile.catalog.figure_ranges import estimated_figures
    said = estimated_figures(chip)
    assert any(s.startswith("ascend-950dt-144gb fp8_tflops = 1000 is not a published figure (upper bound)") for s in said)
    assert not any(s.startswith("ascend-950dt-144gb bf16_tflops") for s in said)


def test_search_and_training_bands_carry_the_same_widening() -> None:
    from stockpile.search.serving import Slo, search
    from stockpile.search.training import train
    model = get_model("Qwen/Qwen3-32B")
    widths = {}
    for chip_id in ("mi300x-192gb", "mi308x-192gb"):
        r = search(model, get_chip(chip_id), gpus=8, isl=2000, osl=500, slo=Slo(tpot_ms=60), disaggregation=False,
                   top=2)
        c = r.candidates[0]
        assert c.band is not None
        widths[chip_id] = c.band["tpot_ms"][1] / c.band["tpot_ms"][0]
    assert widths["mi308x-192gb"] > 1.2 * widths["mi300x-192gb"]
    assert "estimated chip figures" in (r.band_note or "")
    t = train("meta-llama/Llama-3.1-8B", "mi250x-128gb", 64, 1e12)
    assert t.band is not None and "no validated rows on cdna2" in (t.band_note or "")
    h = train("meta-llama/Llama-3.1-8B", "h100-sxm-80gb", 64, 1e12)
    assert h.band is not None and "here" not in (h.band_note or "")
    assert t.band["mfu"][1] / t.band["mfu"][0] > h.band["mfu"][1] / h.band["mfu"][0]


def test_a_thin_regime_says_its_band_is_a_broader_groups() -> None:
    from stockpile.calibration.bands import band, describe
    thin = band("vllm", "cdna3", "tpot_ms", "closed")          # MI300X-class runs with vLLM in closed loops: few
    rich = band("vllm", "hopper", "tpot_ms", "closed")
    assert thin is not None and rich is not None
    assert "broader group" in describe(*thin, family="cdna3")
    assert "broader group" not in describe(*rich, family="hopper")


def test_an_estimate_is_named_by_its_marks_or_its_first_clause() -> None:
    """A note led by its marks ("ESTIMATE (UPPER BOUND): ...") is quoted up to them; a note without that lead is
    quoted up to its first clause, not cut at a colon inside it (the H20's NIC note says "1:1 CX7")."""
    from stockpile.catalog.figure_ranges import estimated_figures
    h20 = [s for s in estimated_figures(get_chip("h20-96gb")) if "scaleout_gbps" in s]
    assert h20 and h20[0].endswith("although its comment says 1:1 CX7")
    mi308 = estimated_figures(get_chip("mi308x-192gb"))
    assert "mi308x-192gb bf16_tflops = 299 is not a published figure: ESTIMATE (UPPER BOUND)" in mi308
