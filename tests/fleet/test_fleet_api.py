"""The plan --json contract, the bundled example end to end, light imports, the HTML report."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from stockpile.fleet.planner import example_path, plan_scenario
from stockpile.report import write_plan_report


def test_contract_fields(base, rates):
    base["training"] = {"generations": [{"name": "g", "params_b": 7, "tokens": 1e12, "deadline": "2025-06",
                                         "min_chips": 100, "max_chips": 200}]}
    d = plan_scenario(base, samples=200, rates=rates).to_contract()
    json.dumps(d)
    for key in ("p10", "p50", "p90"):
        assert d["runway"][key] is None or len(d["runway"][key]) == 7
    g = d["generations"][0]
    assert {"name", "chips", "chip", "start", "end", "meets_deadline"} <= set(g)
    a = d["allocation"][0]
    assert {"month", "chip", "training", "inference", "idle"} <= set(a)
    assert isinstance(d["cost_usd"], float)
    u = d["unmet"][0]
    assert {"workload", "month", "output_tokens_per_s"} <= set(u)


def test_bundled_example_end_to_end():
    # its speed is measured by bench/plan_scale.py, not asserted here (a loaded machine would fail it)
    res = plan_scenario(example_path(), samples=1000)
    assert res.status == "optimal"
    assert res.generations_planned == 2
    assert res.runway.samples == 1000
    months = {a.month for a in res.allocation}
    assert len(months) == 24
    for a in res.allocation:
        assert a.training + sum(a.inference.values()) + a.idle == a.usable <= a.stock
    h20_orders = [o for o in res.procurement if o.chip == "h20-96gb"]
    assert all(o.arrival_month < "2025-04" for o in h20_orders)     # the licence requirement stops deliveries
    assert "Runway" in res.summary()


def test_api_import_is_light():
    code = ("import sys, stockpile.fleet, stockpile.fleet.planner, stockpile.report; "
            "print(any(m.startswith(('scipy', 'plotly')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_html_report_is_self_contained(base, rates, tmp_path):
    pytest.importorskip("plotly")
    res = plan_scenario(base, samples=200, rates=rates)
    path = write_plan_report(res, tmp_path / "plan.html")
    text = path.read_text()
    assert text.count("Plotly.newPlot") >= 5
    assert 'src="http' not in text                      # plotly.js inlined, no CDN
    assert "Runway" in text and "Allocation per month" in text
