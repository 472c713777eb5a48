"""User chips looked up before the shipped catalog (``extra_chips``) and read from a chip file (``--chip-file``)."""
from __future__ import annotations

import pytest
import yaml

from stockpile.catalog.chips import (
    Chip,
    Figure,
    extra_chips,
    figure_fields,
    get_chip,
    list_chips,
    load_chip_file,
    overlay_version,
)
from stockpile.errors import InputError, MissingFigureError, UnknownNameError

# The test's own numbers, not a sourced specification: the catalog has no sourced RTX 4090D tensor peak
# (stockpile/data/chips/nvidia.yaml), so these only exercise the overlay.
SRC = "test fixture: the test's own number, not an RTX 4090D specification"
NO_PEAK = "rtx-4090d-24gb"


def _user(chip_id: str = "mychip-64gb", **figs: float) -> Chip:
    figs = figs or {"memory_gb": 64, "bf16_tflops": 300}
    return Chip(id=chip_id, vendor="Acme", name="My chip", family="user",
                **{k: Figure(value=v, source=SRC) for k, v in figs.items()})


def test_overlay_wins_and_restores_on_exit():
    catalog_chip = get_chip(NO_PEAK)
    with pytest.raises(MissingFigureError):
        catalog_chip.peak_flops("bf16")
    overlaid = catalog_chip.model_copy(update={"bf16_tflops": Figure(value=345, source=SRC)})
    n = len(list_chips())
    v0 = overlay_version()
    with extra_chips([overlaid, _user()]):
        assert get_chip("RTX-4090D-24GB").peak_flops("bf16") == 345e12     # case-insensitive, overlay first
        assert get_chip("MyChip-64GB").memory_gb.value == 64
        ids = [c.id for c in list_chips()]
        assert len(ids) == n + 1 and ids.count(NO_PEAK) == 1 and "mychip-64gb" in ids
        assert next(c for c in list_chips() if c.id == NO_PEAK).bf16_tflops.value == 345
        assert overlay_version() > v0
    assert overlay_version() > v0 + 1                                       # leaving bumps it too
    with pytest.raises(MissingFigureError):
        get_chip(NO_PEAK).peak_flops("bf16")
    with pytest.raises(UnknownNameError):
        get_chip("mychip-64gb")
    assert len(list_chips()) == n


def test_overlays_nest_inner_wins_and_restore_even_after_an_error():
    with extra_chips([_user(bf16_tflops=100)]):
        with pytest.raises(RuntimeError):
            with extra_chips([_user(bf16_tflops=200)]):
                assert get_chip("mychip-64gb").bf16_tflops.value == 200
                raise RuntimeError("boom")
        assert get_chip("mychip-64gb").bf16_tflops.value == 100
    with pytest.raises(UnknownNameError):
        get_chip("mychip-64gb")


def test_overlay_ids_are_lower_cased_and_suggested():
    with extra_chips([_user("MyChip-64GB")]):
        assert get_chip("mychip-64gb").id == "mychip-64gb"
        with pytest.raises(UnknownNameError) as e:
            get_chip("mychip-64g")
        assert "mychip-64gb" in e.value.suggestions


def _write(tmp_path, records, name="chips.yaml"):
    p = tmp_path / name
    p.write_text(records if isinstance(records, str) else yaml.safe_dump(records, sort_keys=False))
    return p


GOOD = [{"id": "mychip-64gb", "vendor": "Acme", "name": "My chip", "family": "user",
         "memory_gb": {"value": 64, "source": SRC}, "memory_bw_gbs": {"value": 2000, "source": SRC},
         "bf16_tflops": {"value": 300, "source": SRC, "note": "dense"}, "tdp_w": {"value": 400, "source": SRC}}]


def test_chip_file_loads_and_works_in_the_overlay(tmp_path):
    chips = load_chip_file(_write(tmp_path, GOOD))
    assert [c.id for c in chips] == ["mychip-64gb"]
    with extra_chips(chips):
        c = get_chip("mychip-64gb")
        assert c.peak_flops("bf16") == 300e12 and c.mem_bw == 2000e9 and c.tdp == 400


def test_figure_fields_are_the_chip_figures():
    assert {"memory_gb", "memory_bw_gbs", "bf16_tflops", "tdp_w", "scaleup_bw_gbs", "price_usd"} <= set(figure_fields())
    assert "vendor" not in figure_fields() and "export" not in figure_fields()


@pytest.mark.parametrize("records, expect", [
    ({"id": "x"}, "must be a YAML list"),
    ("", "empty"),
    ("- id: [unclosed\n", "not valid YAML"),
    (["just a string"], "chip 0"),
    ([{**GOOD[0], "id": ""}], "id"),
    ([{**GOOD[0], "memory_gb": {"value": 64}}], "chip 0 (mychip-64gb) (line 5): memory_gb.source: missing"),
    ([{**GOOD[0], "memory_gb": {"value": -64, "source": SRC}}], "memory_gb.value: must be >= 0"),
    ([{**GOOD[0], "memory_gb": {"value": "lots", "source": SRC}}], "memory_gb.value"),
    ([{**GOOD[0], "memroy_gb": {"value": 64, "source": SRC}}], "memroy_gb: unknown field"),
    ([{k: v for k, v in GOOD[0].items() if k != "vendor"}], "vendor"),
    ([GOOD[0], {**GOOD[0], "id": "MyChip-64GB"}], "chip 1 (MyChip-64GB)"),
])
def test_chip_file_errors_name_file_record_field_and_fix(tmp_path, records, expect):
    p = _write(tmp_path, records, "mine.yaml")
    with pytest.raises(InputError) as e:
        load_chip_file(p)
    msg = str(e.value)
    assert "mine.yaml" in msg and expect in msg, msg


def test_chip_file_record_errors_give_the_fix(tmp_path):
    p = _write(tmp_path, [{**GOOD[0], "bf16_tflops": {"value": 300}}])
    with pytest.raises(InputError) as e:
        load_chip_file(p)
    assert "{value: NUMBER, source:" in str(e.value)


def test_missing_chip_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_chip_file(tmp_path / "nope.yaml")
