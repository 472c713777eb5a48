"""Scenario schema and loading: the bundled example, the published JSON Schema, clear errors with lines."""
from __future__ import annotations

import json

import pytest
import yaml

from stockpile.errors import DataError, InputError, UnknownNameError
from stockpile.fleet.planner import example_path, scenario_schema
from stockpile.fleet.scenario_load import load_scenario

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


GEN = """
training:
  generations:
    - {name: a, params_b: 7, tokens: 1T, deadline: 2025-06, min_chips: 8, max_chips: 8, after: c}
    - {name: b, params_b: 7, tokens: 1T, deadline: 2025-06, min_chips: 8, max_chips: 8, after: a}
    - {name: c, params_b: 7, tokens: 1T, deadline: 2025-06, min_chips: 8, max_chips: 8, after: b}
"""


def test_circular_after_is_an_input_error_naming_the_chain():
    with pytest.raises(InputError, match=r"training.generations\[0\].after: circular dependency: a -> c -> b -> a"):
        load_scenario(GOOD + GEN)


def test_event_announced_after_its_date_is_refused():
    bad = GOOD + "policy_events:\n  - {chip: h800-sxm-80gb, date: 2025-03, announced: 2025-05, probability: 0.5}\n"
    with pytest.raises(InputError, match=r"policy_events\[0\]: announced 2025-05 is after the event's date 2025-03"):
        load_scenario(bad)


def test_contradictory_events_in_one_month_are_refused():
    bad = GOOD + ("policy_events:\n  - {chip: h800-sxm-80gb, date: 2025-03, effect: no_purchase}\n"
                  "  - {chip: h800-sxm-80gb, date: 2025-03, effect: allow_purchase}\n")
    with pytest.raises(InputError, match=r"policy_events\[1\].effect: .* contradict"):
        load_scenario(bad)


def test_event_needs_a_chip_or_a_rule():
    with pytest.raises(InputError, match="give exactly one of chip"):
        load_scenario(GOOD + "policy_events:\n  - {date: 2025-03}\n")


def test_too_many_uncertain_events():
    evs = "".join(f"  - {{chip: h800-sxm-80gb, date: 2025-{m:02d}, probability: 0.5}}\n" for m in range(1, 8))
    with pytest.raises(InputError, match="at most 6 are combined into policy worlds"):
        load_scenario(GOOD + "policy_events:\n" + evs)


@pytest.mark.parametrize("ladder, message", [
    ("{compute_growth: 0.5}", "compute_growth"),
    ("{every_months: 0}", "every_months"),
    ("{first: {params_b: 100}}", "give compute_flop, or params_b"),
    ("{first: {compute_flop: -1}}", "compute_flop"),
])
def test_impossible_ladders_are_refused(ladder, message):
    with pytest.raises(InputError, match=message):
        load_scenario(GOOD + f"training:\n  ladder: {ladder}\n")


def test_bad_daily_profile_and_measured_rate():
    w = GOOD.replace("    osl: 500\n", "    osl: 500\n    daily_profile: [1, 2]\n")
    with pytest.raises(InputError, match="daily_profile"):
        load_scenario(w)
    w = GOOD.replace("    osl: 500\n", "    osl: 500\n    throughput_per_gpu: {h800-sxm-80gb: -3}\n")
    with pytest.raises(InputError, match="throughput_per_gpu.h800-sxm-80gb must be a positive"):
        load_scenario(w)


def test_cli_bad_scenarios_exit_non_zero_with_one_line(tmp_path):
    import subprocess
    import sys
    cases = {"cycle": GOOD + GEN, "chip": GOOD.replace("h800-sxm-80gb", "h900-sxm-80gb"),
             "count": GOOD.replace("count: 100", "count: -5"),
             "ladder": GOOD + "training:\n  ladder: {compute_growth: 1}\n"}
    for name, text in cases.items():
        p = tmp_path / f"{name}.yaml"
        p.write_text(text)
        r = subprocess.run([sys.executable, "-m", "stockpile.cli", "plan", str(p)], capture_output=True, text=True)
        assert r.returncode != 0, name
        assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, (name, r.stderr)
    r = subprocess.run([sys.executable, "-m", "stockpile.cli", "plan", str(tmp_path / "cycle.yaml"), "--report",
                        str(tmp_path / "missing" / "x.html")], capture_output=True, text=True)
    assert r.returncode != 0 and "does not exist" in r.stderr
