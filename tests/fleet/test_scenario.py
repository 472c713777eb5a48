"""Scenario schema and loading: the bundled example, the published JSON Schema, clear errors with lines."""
from __future__ import annotations

import json

import pytest
import yaml

from stockpile.errors import DataError, InputError, UnknownNameError
from stockpile.fleet.planner import example_path, scenario_schema
from stockpile.fleet.scenario import load_scenario

GOOD = """\
name: t
start: 2025-01
horizon_months: 6
stock:
  - chip: h800-sxm-80gb
    count: 100
inference:
  - name: chat
    model: Qwen/Qwen3-32B
    tokens_per_day: 1B
    isl: 500
    osl: 500
"""


def test_bundled_example_loads_and_cites_sources():
    loaded = load_scenario(example_path())
    s = loaded.scenario
    counts = {}
    for it in s.stock:
        counts[it.chip] = counts.get(it.chip, 0) + it.count
    assert counts["h800-sxm-80gb"] == 12_000 and counts["h20-96gb"] == 20_000 and counts["a800-sxm-80gb"] == 8_000
    assert len(s.training.generations) == 2 and len(s.inference) == 3
    assert any(e.chip == "h20-96gb" and e.date == "2025-04" and e.effect == "no_purchase" for e in s.policy_events)
    text = example_path().read_text()
    assert text.count("[fact:") >= 20                  # numbers cite fleet_facts.csv


def test_schema_is_json_and_documents_defaults():
    schema = scenario_schema()
    json.dumps(schema)
    props = schema["properties"]
    for key in ("stock", "attrition", "procurement", "policy_events", "training", "inference", "costs",
                "horizon_months", "uncertainty"):
        assert key in props
    training = schema["$defs"]["Training"]["properties"]
    assert "arXiv" in training["mfu"]["description"]


def test_token_counts_accept_suffixes():
    s = load_scenario(GOOD).scenario
    assert s.inference[0].tokens_per_day == 1e9


def test_negative_count_names_field_and_line():
    bad = GOOD.replace("count: 100", "count: -5")
    with pytest.raises(InputError) as e:
        load_scenario(bad)
    assert e.value.field == "stock[0].count"
    assert "line 6" in str(e.value)


def test_unknown_chip_suggests_close_ids_with_line():
    bad = GOOD.replace("chip: h800-sxm-80gb", "chip: h800-sxm-80")
    with pytest.raises(UnknownNameError) as e:
        load_scenario(bad)
    assert e.value.field == "stock[0].chip"
    assert "h800-sxm-80gb" in str(e.value) and "line 5" in str(e.value)


def test_unknown_model_is_named():
    with pytest.raises(UnknownNameError) as e:
        load_scenario(GOOD.replace("Qwen/Qwen3-32B", "nobody/NoModel-7B"))
    assert e.value.field == "inference[0].model"


def test_deadline_before_start_is_refused():
    d = yaml.safe_load(GOOD)
    d["training"] = {"generations": [{"name": "g", "params_b": 7, "tokens": 1e12, "deadline": "2024-06",
                                      "min_chips": 8, "max_chips": 8}]}
    with pytest.raises(InputError) as e:
        load_scenario(d)
    assert e.value.field == "training.generations[0].deadline" and "before the scenario start" in str(e.value)
    d["training"]["generations"][0].update(deadline="2025-03", earliest_start="2025-05")
    with pytest.raises(InputError, match="before earliest_start"):
        load_scenario(d)


def test_generation_needs_budget_and_size():
    d = yaml.safe_load(GOOD)
    d["training"] = {"generations": [{"name": "g", "params_b": 7, "deadline": "2025-06", "min_chips": 8,
                                      "max_chips": 8}]}
    with pytest.raises(InputError, match="tokens"):
        load_scenario(d)


def test_bad_month_and_unknown_field():
    with pytest.raises(InputError, match="YYYY-MM"):
        load_scenario(GOOD.replace("start: 2025-01", "start: January"))
    with pytest.raises(InputError) as e:
        load_scenario(GOOD + "colour: blue\n")
    assert e.value.field == "colour"


def test_yaml_syntax_error_has_line():
    with pytest.raises(DataError, match="line"):
        load_scenario(GOOD + "  - chip: [unclosed\n")


def test_unknown_cluster_and_generation_order():
    d = yaml.safe_load(GOOD)
    d["clusters"] = [{"id": "a"}]
    d["stock"][0]["cluster"] = "b"
    with pytest.raises(InputError, match="unknown cluster 'b'"):
        load_scenario(d)
    d = yaml.safe_load(GOOD)
    d["training"] = {"generations": [{"name": "g", "params_b": 7, "tokens": 1e12, "deadline": "2025-06",
                                      "min_chips": 8, "max_chips": 8, "after": "nothing"}]}
    with pytest.raises(InputError, match="not another generation"):
        load_scenario(d)
