"""The user's own chips (`chips:` figures) and inventory (`stock:` as a CSV file) in a scenario."""
from __future__ import annotations

import pytest

from stockpile.catalog.chips import extra_chips, get_chip
from stockpile.errors import InputError, MissingFigureError, UnknownNameError
from stockpile.fleet.chips_in import scenario_chips
from stockpile.fleet.planner import example_path
from stockpile.fleet.scenario_load import load_scenario

# The test's own numbers, not a sourced specification: the catalog has no sourced RTX 4090D tensor peak
# (stockpile/data/chips/nvidia.yaml), so these only exercise the input path.
SRC = "test fixture: the test's own number, not an RTX 4090D specification"
NO_PEAK = "rtx-4090d-24gb"

HEAD = """\
name: t
start: 2025-06
horizon_months: 6
inference:
  - name: chat
    model: Qwen/Qwen3-32B
    tokens_per_day: 1B
    isl: 500
    osl: 500
"""

NO_PEAK_SCENARIO = HEAD + f"""\
stock:
  - chip: {NO_PEAK}
    count: 100
chips:
  {NO_PEAK}:
    bf16_tflops: {{value: 345, source: "{SRC}"}}
    memory_bw_gbs: {{value: 1800, source: "{SRC}"}}
    tdp_w: {{value: 400, source: "{SRC}"}}
"""


def test_missing_figures_from_the_scenario():
    with pytest.raises(MissingFigureError):
        get_chip(NO_PEAK).peak_flops("bf16")                     # the shipped catalog has no sourced 4090D peak
    loaded = load_scenario(NO_PEAK_SCENARIO)
    [chip] = scenario_chips(loaded.scenario)
    assert chip.id == NO_PEAK and chip.family == "ada" and chip.memory_gb.value == 24  # catalog figures kept
    assert chip.peak_flops("bf16") == 345e12 and chip.mem_bw == 1800e9 and chip.tdp == 400
    assert loaded.scenario.chips[NO_PEAK].tdp_w == 400                                     # a number, as before
    with extra_chips(scenario_chips(loaded.scenario)):
        assert get_chip(NO_PEAK).peak_flops("bf16") == 345e12
    with pytest.raises(MissingFigureError):
        get_chip(NO_PEAK).peak_flops("bf16")


def test_made_up_chip_with_figures_loads():
    text = HEAD + f"""\
stock:
  - chip: mychip-64gb
    count: 64
procurement:
  - chip: MyChip-64GB
    price_usd: 10000
    max_per_month: 10
chips:
  mychip-64gb:
    vendor: Acme
    memory_gb: {{value: 64, source: "{SRC}"}}
    bf16_tflops: {{value: 200, source: "{SRC}"}}
"""
    [chip] = scenario_chips(load_scenario(text).scenario)
    assert (chip.id, chip.vendor, chip.name, chip.family) == ("mychip-64gb", "Acme", "mychip-64gb", "user")
    assert chip.memory_gb.value == 64 and chip.peak_flops("bf16") == 200e12 and chip.sources()["memory_gb"] == SRC


def test_unknown_chip_without_figures_still_suggests():
    text = HEAD + "stock:\n  - chip: h800-sxm-80g\n    count: 1\n"
    with pytest.raises(UnknownNameError, match="did you mean h800-sxm-80gb"):
        load_scenario(text)
    text = HEAD + "stock:\n  - chip: h800-sxm-80gb\n    count: 1\nchips:\n  mychip-64gb:\n    power_w: 900\n"
    with pytest.raises(UnknownNameError) as e:
        load_scenario(text)
    assert "chips.mychip-64gb" in str(e.value) and "give its figures" in str(e.value)


def test_bundled_example_power_w_and_plain_tdp_still_work():
    s = load_scenario(example_path()).scenario
    ov = s.chips["ascend-910c-128gb"]
    assert ov.power_w == 1456 and ov.source and not ov.figures()
    assert scenario_chips(s) == []
    text = HEAD + "stock:\n  - chip: h20-96gb\n    count: 1\nchips:\n  h20-96gb:\n    tdp_w: 350\n"
    s = load_scenario(text).scenario
    assert s.chips["h20-96gb"].tdp_w == 350 and scenario_chips(s)[0].tdp == 350
    text = text.replace("tdp_w: 350", "tdp_w: 350\n    memory_gb: 96\n    source: https://example.com/h20-spec")
    chip = scenario_chips(load_scenario(text).scenario)[0]
    assert chip.memory_gb.value == 96 and chip.memory_gb.source == "https://example.com/h20-spec"


@pytest.mark.parametrize("figure, where, expect", [
    ('{value: -5, source: "https://example.com/spec"}', "chips.mychip-64gb.bf16_tflops", "negative"),
    ('{value: lots, source: "https://example.com/spec"}', "chips.mychip-64gb.bf16_tflops.value", "valid number"),
    ("{value: 5}", "chips.mychip-64gb.bf16_tflops", "no source"),
    ('{value: 5, source: "short"}', "chips.mychip-64gb.bf16_tflops.source", "at least 8"),
    ("5", "chips.mychip-64gb.bf16_tflops", "with its source"),
])
def test_bad_figures_name_field_and_line(figure, where, expect):
    text = HEAD + f"stock:\n  - chip: mychip-64gb\n    count: 1\nchips:\n  mychip-64gb:\n    bf16_tflops: {figure}\n"
    with pytest.raises(InputError) as e:
        load_scenario(text)
    msg = str(e.value)
    assert msg.startswith(where + ":") and expect in msg and "(scenario, line 15)" in msg, msg


def test_chip_ids_differing_in_case_are_one_chip():
    text = HEAD + ("stock:\n  - chip: h20-96gb\n    count: 1\nchips:\n  h20-96gb:\n    power_w: 900\n"
                   "  H20-96GB:\n    power_w: 800\n")
    with pytest.raises(InputError, match="same chip"):
        load_scenario(text)


# ------------------------------------------------------------------ stock as a CSV file
STOCK_LIST = [
    {"chip": "h800-sxm-80gb", "count": 1000, "age_months": 12, "cluster": "default"},
    {"chip": "h20-96gb", "count": 500, "acquired": "2024-11", "cluster": "default"},
    {"chip": "a800-sxm-80gb", "count": 8, "age_months": 0, "cluster": "default"},
]
CSV = """\
chip,count,age_months,acquired,cluster
h800-sxm-80gb,1000,12,,default
h20-96gb,500,,2024-11,

a800-sxm-80gb,8,0,,
"""


def _scenario_file(tmp_path, csv_text, csv_name="inventory.csv", extra=""):
    (tmp_path / csv_name).write_text(csv_text)
    p = tmp_path / "scn.yaml"
    p.write_text(HEAD + f"stock: {csv_name}\n" + extra)
    return p


def test_csv_stock_round_trip(tmp_path, monkeypatch):
    from_csv = load_scenario(_scenario_file(tmp_path, CSV)).scenario
    from_list = load_scenario({**__import__("yaml").safe_load(HEAD), "stock": STOCK_LIST}).scenario
    assert from_csv.stock == from_list.stock and len(from_csv.stock) == 3
    monkeypatch.chdir(tmp_path)                                          # YAML text: relative to the cwd
    assert load_scenario(HEAD + "stock: inventory.csv\n").scenario.stock == from_list.stock


def test_csv_stock_with_a_user_chip_and_clusters(tmp_path):
    extra = ("clusters:\n  - id: east\nchips:\n  mychip-64gb:\n"
             f"    bf16_tflops: {{value: 200, source: \"{SRC}\"}}\n")
    s = load_scenario(_scenario_file(tmp_path, "chip,count,age_months,cluster\nMyChip-64GB,4,1,east\n",
                                     extra=extra)).scenario
    assert [(i.chip, i.count, i.cluster) for i in s.stock] == [("MyChip-64GB", 4, "east")]


@pytest.mark.parametrize("csv_text, expect", [
    ("chip,count,age_months,cluster\nh800-sxm-80gb,10,0,a\nh20-96gb,10,0,a\nh20-96gb,abc,0,a\n",
     "stock (inventory.csv, line 4): count 'abc' is not a whole number"),
    ("chip,count,age_months\nh800-sxm-80gb,-5,0\n", "stock (inventory.csv, line 2): count -5 is negative"),
    ("chip,count,age_months\nh800-sxm-80gb,2.5,0\n", "line 2): count '2.5' is not a whole number"),
    ("chip,count,age_months\nh800-sxm-80gb,,0\n", "line 2): count is blank"),
    ("chip,count,age_months\nh800-sxm-80gb,5,-1\n", "line 2): age_months -1 is negative"),
    ("chip,count,acquired\nh800-sxm-80gb,5,April\n", "line 2): 'April' is not a month"),
    ("chip,count,age_months,acquired\nh800-sxm-80gb,5,3,2024-01\n", "not both"),
    ("chip,count\nh800-sxm-80gb,5\n", "stock (inventory.csv, line 1): missing column age_months (or acquired)"),
    ("chip,age_months\nh800-sxm-80gb,5\n", "missing column count"),
    ("chip,count,age_months,cluser\nh800-sxm-80gb,5,0,a\n", "unknown column 'cluser'"),
    ("chip,count,age_months\nh800-sxm-80gb,5,0,extra\n", "line 2): 4 fields"),
    ("chip,count,age_months\n,5,0\n", "line 2): chip is blank"),
    ("", "inventory.csv is empty"),
])
def test_csv_stock_errors_name_file_and_line(tmp_path, csv_text, expect):
    with pytest.raises(InputError) as e:
        load_scenario(_scenario_file(tmp_path, csv_text))
    assert expect in str(e.value), str(e.value)


def test_csv_unknown_chip_suggests(tmp_path):
    with pytest.raises(UnknownNameError) as e:
        load_scenario(_scenario_file(tmp_path, "chip,count,age_months\nh800-sxm-80gb,1,0\nh800-sxm-80g,5,0\n"))
    assert str(e.value).startswith("stock (inventory.csv, line 3): unknown chip 'h800-sxm-80g'; did you mean")
    assert "h800-sxm-80gb" in e.value.suggestions


def test_csv_missing_file_names_it_and_the_scenario_line(tmp_path):
    p = tmp_path / "scn.yaml"
    p.write_text(HEAD + "stock: nowhere.csv\n")
    with pytest.raises(InputError) as e:
        load_scenario(p)
    msg = str(e.value)
    assert "nowhere.csv" in msg and "not found" in msg and "(scn.yaml, line 10)" in msg, msg


def test_csv_row_checked_after_validation_points_at_the_csv_line(tmp_path):
    extra = "clusters:\n  - id: east\n"
    with pytest.raises(InputError) as e:
        load_scenario(_scenario_file(tmp_path, "chip,count,age_months,cluster\nh800-sxm-80gb,5,0,east\n"
                                     "h20-96gb,5,0,west\n", extra=extra))
    assert "stock[1].cluster: unknown cluster 'west'" in str(e.value) and "(inventory.csv, line 3)" in str(e.value)
    with pytest.raises(InputError) as e:
        load_scenario(_scenario_file(tmp_path, "chip,count,acquired\nh800-sxm-80gb,5,2026-01\n"))
    assert "stock[0].acquired" in str(e.value) and "(inventory.csv, line 2)" in str(e.value)
