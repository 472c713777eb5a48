"""The HTML plan report: headline, key figures, policy worlds, month axes (never 1970), the comparison view,
atomic writes; and the page as headless Chromium renders it (skipped, saying why, when Chromium is missing:
`make test` installs Debian's chromium)."""
from __future__ import annotations

import copy
import html
import importlib.util
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from stockpile.errors import InputError
from stockpile.fleet.planner import compare_scenarios, plan_scenario
from stockpile.fleet.result import Comparison, IdleReason, PlanResult

pytest.importorskip("plotly")

from stockpile.report import (  # noqa: E402  (after the plotly check)
    render_comparison_html,
    render_plan_html,
    write_comparison_report,
    write_plan_report,
)
from stockpile.report.charts import comparison_coverage, figures  # noqa: E402


def _fleet_helpers() -> Any:
    """tests/fleet/fleet_helpers.py (BASE scenario, fake rates), loaded by path: no package layout needed."""
    path = Path(__file__).resolve().parents[1] / "fleet" / "fleet_helpers.py"
    spec = importlib.util.spec_from_file_location("report_fleet_helpers", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


H = _fleet_helpers()
EVENT = "no_purchase h20-96gb 2025-08"


def _scenario(name: str = "toy", stock: int = 1000) -> dict[str, Any]:
    """Demand outgrows the stock; h20 can be bought until a ban (40 % likely) from 2025-08: two policy worlds."""
    s = copy.deepcopy(H.BASE)
    s["name"] = name
    s["stock"][0]["count"] = stock
    s["inference"][0]["monthly_growth"] = 0.2
    s["procurement"] = [{"chip": "h20-96gb", "price_usd": 10_000, "lead_time_months": 2, "max_per_month": 400}]
    s["policy_events"] = [{"chip": "h20-96gb", "date": "2025-08", "effect": "no_purchase", "probability": 0.4}]
    return s


@pytest.fixture(scope="module")
def result() -> PlanResult:
    return plan_scenario(_scenario(), samples=300, rates=H.fake_rates())


@pytest.fixture(scope="module")
def comparison() -> Comparison:
    return compare_scenarios([_scenario(), _scenario("toy-more-stock", 2000)], samples=300, rates=H.fake_rates())


# ------------------------------------------------------------------ without a browser
def test_plan_report_has_the_headline_key_figures_worlds_and_notes(result):
    assert len(result.runway.worlds) == 2
    text = render_plan_html(result)
    assert html.escape(result.headline.partition("; with the planned")[0]) in text
    assert "Your stock alone meets demand until" in text
    so = result.runway.stock_only
    assert so is not None and "Stock alone: demand met until" in text and f"searched until {so.searched_until}" in text
    gt = result.generations_trainable
    assert gt is not None and "Generations trainable on the stock alone" in text
    assert f"growth {gt.ladder['compute_growth']:g}x compute" in text and "first rungs: #1" in text
    # the policy-worlds table: one row per world, the shared-decisions sentence above it
    assert "shared by all worlds" in text
    body = text[text.index("<section id=\"worlds\">"):text.index("<section id=\"idle-notes\">")]
    rows = re.findall(r"<tr><td class='text'>(.*?)</td><td>(.*?)</td>", body)
    assert [r[1] for r in rows] == ["60%", "40%"]
    assert rows[0][0].startswith("none of the uncertain events") and rows[1][0].startswith(EVENT)
    with_ban = result.runway.worlds[1]
    ordered = sum(o.count for o in with_ban.procurement)
    assert f"{ordered:,} x h20-96gb" in body


def test_idle_chips_and_notes_read_as_sentences(result):
    idle = IdleReason(chip="h800-sxm-80gb", months_idle=3, mean_idle=120.4, reason="no workload can be served on it")
    r = result.model_copy(update={"idle": [idle], "notes": ["training speed: the layout search's best layout"]})
    text = render_plan_html(r)
    part = text[text.index('<section id="idle-notes">'):]
    assert ("<li>On average 120 h800-sxm-80gb chips sit idle in 3 of the 12 months: no workload can be served on "
            "it.</li>") in part
    assert f"<li>Note: {html.escape('training speed: the layout search')}" in part


def _is_month(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    for fmt in ("%Y-%m", "%Y-%m-%d", "%Y-%m-%d %H:%M"):
        try:
            datetime.strptime(v, fmt)
            return True
        except ValueError:
            pass
    return False


def _check_month_axes(fig: Any) -> None:
    """Every x value (traces, shapes, annotations on x) is a month string or date; every x axis is a date axis."""
    for tr in fig.data:
        if tr.x is None:
            continue
        if getattr(tr, "orientation", None) == "h":       # Gantt bars: base is the date, x the length in ms
            assert all(_is_month(b) for b in tr.base), tr.base
            continue
        assert all(_is_month(v) for v in tr.x), (tr.name, list(tr.x)[:3])
    for sh in fig.layout.shapes:
        if sh.xref and sh.xref.startswith("x") and not sh.xref.endswith("domain"):
            assert _is_month(sh.x0) and _is_month(sh.x1), (sh.x0, sh.x1)
    for an in fig.layout.annotations:
        if an.xref and an.xref.startswith("x") and not an.xref.endswith("domain") and an.x is not None:
            assert _is_month(an.x), an.x
    axes = [k for k in fig.layout.to_plotly_json() if k.startswith("xaxis")]
    assert axes and all(fig.layout[k].type == "date" for k in axes)


def test_every_month_axis_holds_months_never_numbers(result):
    figs = figures(result)
    assert {a for a, _, _ in figs} >= {"runway-fan", "capacity", "allocation", "cost"}
    fan = figs[0][2]
    assert any(sh.x0 in result.months for sh in fan.layout.shapes)   # the runway markers are drawn ...
    for _, _, fig in figs:                                              # ... as months, like everything else
        _check_month_axes(fig)
    _check_month_axes(comparison_coverage([result]))


def test_comparison_report_tables_headlines_and_one_plotly(comparison):
    text = render_comparison_html(comparison)
    assert text.count("plotly.js v") == 1 and text.count("Plotly.newPlot") == 1
    assert 'src="http' not in text
    for r in comparison.scenarios:
        assert html.escape(r.headline.partition("; with the planned")[0]) in text
    assert "differences from the first" in text and "toy-more-stock" in text
    diff = comparison.comparison[1].differences
    assert diff and html.escape("; ".join(diff)) in text


def test_report_is_written_atomically(result, tmp_path):
    dest = tmp_path / "plan.html"
    dest.write_text("old")
    assert write_plan_report(result, dest) == dest
    text = dest.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert [p.name for p in tmp_path.iterdir()] == ["plan.html"]        # no temporary file left behind


def test_unusable_report_path_is_an_input_error(result, comparison, tmp_path):
    for bad in (tmp_path, tmp_path / "missing" / "plan.html"):
        with pytest.raises(InputError) as e:
            write_plan_report(result, bad)
        assert e.value.field == "report"
        with pytest.raises(InputError) as e:
            write_comparison_report(comparison, bad)
        assert e.value.field == "report"
    assert not (tmp_path / "missing").exists()


# ------------------------------------------------------------------ in headless Chromium
def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    pytest.skip("Chromium is not installed, so the report was not checked in a real browser: run `make test` "
                "(it installs Debian's chromium) or `apt-get install -y chromium`")


def _dump_dom(page: Path, profile: Path) -> str:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
           f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0 and "</html>" in run.stdout, f"chromium failed: {run.stderr[-2000:]}"
    return run.stdout


def _section(dom: str, anchor: str) -> str:
    start = dom.index(f'<section id="{anchor}">')
    return dom[start:dom.index("</section>", start)]


def _xticks(fragment: str) -> list[str]:
    """The text of the x-axis tick labels plotly drew (``<g class="xtick"><text ...>Jan 2025</text></g>``)."""
    ticks = re.findall(r'<g class="xtick">(.*?)</g>', fragment, flags=re.S)
    return [html.unescape(re.sub(r"<[^>]+>", " ", t)).strip() for t in ticks]


def _check_ticks(ticks: list[str], months: list[str]) -> None:
    years = {int(m[:4]) for m in months} | {int(months[-1][:4]) + 1}
    assert ticks, "plotly drew no x tick labels"
    for t in ticks:
        found = [int(y) for y in re.findall(r"\b(\d{4})\b", t)]
        assert "1970" not in t and found and set(found) <= years, (t, sorted(years))


def test_plan_report_in_chromium(result, tmp_path):
    page = write_plan_report(result, tmp_path / "plan.html")
    dom = _dump_dom(page, tmp_path / "profile")
    assert "Your stock alone meets demand until" in dom
    assert dom.count('class="main-svg"') >= 2 * len(figures(result))     # every chart rendered
    fan = _section(dom, "runway-fan")
    assert 'class="main-svg"' in fan
    ticks = _xticks(fan)
    _check_ticks(ticks, result.months)
    assert any("2025" in t for t in ticks)
    for anchor in ("capacity", "allocation", "cost"):
        _check_ticks(_xticks(_section(dom, anchor)), result.months)


def test_comparison_report_in_chromium(comparison, tmp_path):
    page = write_comparison_report(comparison, tmp_path / "compare.html")
    dom = _dump_dom(page, tmp_path / "profile")
    assert dom.count("Your stock alone meets demand until") == len(comparison.scenarios)
    chart = _section(dom, "comparison-coverage")
    assert 'class="main-svg"' in chart
    months = sorted({m for r in comparison.scenarios for m in r.months})
    _check_ticks(_xticks(chart), months)
