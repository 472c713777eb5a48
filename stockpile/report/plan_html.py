"""Self-contained HTML report of a fleet plan, or of several plans compared: plotly charts (plotly.js inlined
once per page) and the tables behind them.

The plan report opens with the headline (what the stock alone does, then the plan with purchases), a table of
the key figures, the policy worlds, why chips sit idle and the notes; then the charts (runway fan, capacity vs
demand, allocation, training Gantt, cost, see :mod:`stockpile.report.charts`) and the detailed tables.
Reads only :class:`stockpile.fleet.result.PlanResult` / :class:`~stockpile.fleet.result.Comparison`.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from stockpile.errors import InputError
from stockpile.fleet.result import Comparison, PlanResult
from stockpile.report.charts import comparison_coverage, figures

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1200px;
       padding: 0 16px; color: #222; line-height: 1.45; }
h1 { margin-bottom: 2px; } h2 { margin-top: 36px; border-bottom: 1px solid #e4e4e4; padding-bottom: 4px; }
.sub { color: #666; margin-top: 0; }
.headline { font-size: 22px; line-height: 1.5; background: #f3f7fc; border-left: 5px solid #1f77b4;
            padding: 14px 18px; margin: 18px 0; }
.headline span { display: block; }
.headline .plan { font-size: 19px; color: #333; margin-top: 6px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 24px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; vertical-align: top; white-space: nowrap; }
td.text { white-space: normal; } th.text { text-align: left; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
td.text { text-align: left; max-width: 560px; } table.key { width: 100%; }
table.key td:first-child { font-weight: 600; white-space: normal; min-width: 180px; }
.note { color: #666; font-size: 13px; }
ul.sentences li { margin-bottom: 6px; }
nav { font-size: 13px; color: #666; } nav a { margin-right: 10px; }
"""


# ------------------------------------------------------------------ formatting
def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.3g}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) or "-"
    return str(v)


def _table(headers: list[str], rows: list[list[Any]], max_rows: int | None = None, cls: str = "",
           text_cols: tuple[int, ...] = ()) -> str:
    """An HTML table; cells are escaped; `text_cols` are left-aligned, wrapping text."""
    if not rows:
        return "<p class='note'>None.</p>"
    body = rows if max_rows is None else rows[:max_rows]
    out = [f"<table class='{cls}'><thead><tr>" + "".join(
        f"<th class='text'>{html.escape(h)}</th>" if i in text_cols else f"<th>{html.escape(h)}</th>"
        for i, h in enumerate(headers)) + "</tr></thead><tbody>"]
    for r in body:
        out.append("<tr>" + "".join(f"<td class='text'>{html.escape(_fmt(v))}</td>" if i in text_cols
                                    else f"<td>{html.escape(_fmt(v))}</td>" for i, v in enumerate(r)) + "</tr>")
    out.append("</tbody></table>")
    if max_rows is not None and len(rows) > max_rows:
        out.append(f"<p class='note'>{len(rows) - max_rows} more rows in the JSON output (plan --json).</p>")
    return "".join(out)


def _pct(p: float | None) -> str:
    return "-" if p is None else f"{p:.0%}"


def _big(n: float) -> str:
    """1.2e13 -> '12T', 2121.3e9 -> '2.1T' (for parameters and tokens)."""
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:,.3g}{suffix}"
    return f"{n:,.3g}"


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


# ------------------------------------------------------------------ sections of the plan report
def _headline(r: PlanResult) -> str:
    """The headline in large text: the stock alone first, then the plan with purchases."""
    text = r.headline or r.summary().splitlines()[0]
    head, sep, tail = text.partition("; with the planned")
    if not sep:
        return f"<p class='headline'><span>{html.escape(text)}</span></p>"
    return (f"<p class='headline'><span class='stock'>{html.escape(head)};</span>"
            f"<span class='plan'>{html.escape('with the planned' + tail)}</span></p>")


def _ladder(ladder: dict[str, Any]) -> str:
    parts = []
    if ladder.get("compute_growth"):
        parts.append(f"growth {ladder['compute_growth']:g}x compute per generation")
    if ladder.get("every_months"):
        parts.append(f"one every {ladder['every_months']} months")
    rungs = ladder.get("rungs") or []
    if rungs:
        parts.append("first rungs: " + "; ".join(
            f"#{x['index'] + 1} {_big(x['params_b'] * 1e9)} params ({_big(x['active_params_b'] * 1e9)} active), "
            f"{_big(x['tokens'])} tokens, {x['compute_flop']:.2g} FLOP" for x in rungs[:3]))
    if ladder.get("source"):
        parts.append(f"source: {ladder['source']}")
    return "; ".join(parts) or "-"


def key_figures(r: PlanResult) -> str:
    """Small table: stock alone, generations trainable (and the ladder), the plan's runway."""
    rw, so, gt = r.runway, r.runway.stock_only, r.generations_trainable
    beyond = f"beyond {r.months[-1]}"
    rows: list[list[Any]] = []
    if so is not None:
        b = f"beyond {so.searched_until}"
        rows.append(["Stock alone: demand met until", so.p10 or b, so.p50 or b, so.p90 or b, so.deterministic or b,
                     f"searched until {so.searched_until}; P(meets demand through {r.months[-1]}) "
                     f"{_pct(so.p_meets_demand_through_horizon)}"])
    if gt is not None:
        rows.append(["Generations trainable on the stock alone", gt.p10, gt.p50, gt.p90, gt.deterministic,
                     "ladder: " + _ladder(gt.ladder)])
    sampled = f"{rw.samples:,} samples" if rw.samples else "no Monte Carlo: the plan itself"
    rows.append(["The plan (with purchases): demand met until", rw.p10 or beyond, rw.p50 or beyond,
                 rw.p90 or beyond, rw.deterministic or beyond,
                 f"P(meets demand through {r.months[-1]}) {_pct(rw.p_meets_demand_through_horizon)}; {sampled}; "
                 f"tolerance {rw.tolerance:.0%} of peak demand"])
    return _table(["", "P10", "P50", "P90", "deterministic", "details"], rows, cls="key", text_cols=(5,))


def _main_world(r: PlanResult) -> int:
    probs = [w.probability for w in r.runway.worlds]
    return probs.index(max(probs)) if probs else 0


def worlds_section(r: PlanResult, shown_below: bool = True) -> str:
    """One row per policy world: events, probability, runway (deterministic and P50), chips ordered by chip."""
    worlds = r.runway.worlds
    beyond = f"beyond {r.months[-1]}"
    if len(worlds) <= 1:
        return ("<p>No uncertain policy event in this scenario: a single world, whose plan is the one shown "
                "below.</p>")
    main = _main_world(r)
    rows = []
    for i, w in enumerate(worlds):
        by_chip: dict[str, int] = {}
        for o in w.procurement:
            by_chip[o.chip] = by_chip.get(o.chip, 0) + o.count
        ordered = ", ".join(f"{n:,} x {c}" for c, n in by_chip.items()) or "none"
        events = ", ".join(w.events) or "none of the uncertain events"
        mark = (" (shown below)" if shown_below else " (most likely)") if i == main else ""
        rows.append([events + mark, f"{w.probability:.0%}", w.runway or beyond,
                     (w.runway_p50 or beyond) if w.samples else "-", w.samples, ordered])
    intro = ("<p>Decisions taken before an uncertain event is announced are shared by all worlds (the plan cannot "
             "foresee the event); after the announcement each world follows its own plan."
             + (" The charts and tables below show the most likely world, marked <i>shown below</i>." if shown_below
                else "") + "</p>")
    return intro + _table(["events happening", "probability", "runway (this world's plan)", "runway P50 (sampled)",
                           "samples", "chips ordered"], rows, cls="worlds", text_cols=(0, 5))


def idle_and_notes(r: PlanResult) -> str:
    """Why chips sit idle, the binding constraints, unmet demand and the notes, as sentences."""
    items = []
    for i in r.idle:
        items.append(f"On average {i.mean_idle:,.0f} {i.chip} chips sit idle in {i.months_idle} of the "
                     f"{r.horizon_months} months: {i.reason}")
    if r.unmet:
        tot = sum(u.output_tokens for u in r.unmet)
        items.append(f"Unmet demand: {tot:.3g} output tokens over {len({u.month for u in r.unmet})} months "
                     "(integrated over the day)")
    if r.binding_summary:
        items.append(f"Binding: {r.binding_summary}")
    items += [f"Note: {n}" for n in r.notes]
    if not items:
        return "<p>No chip sits idle and there is nothing to note.</p>"
    return "<ul class='sentences'>" + "".join(f"<li>{html.escape(_sentence(t))}</li>" for t in items) + "</ul>"


def _charts(figs: list[tuple[str, str, Any]], plotlyjs: bool) -> str:
    """Each chart in its own section (id = anchor); plotly.js is inlined in the first only."""
    parts = []
    for i, (anchor, title, fig) in enumerate(figs):
        fig.update_layout(template="plotly_white", margin={"l": 70, "r": 30, "t": 30, "b": 50})
        div = fig.to_html(full_html=False, include_plotlyjs=plotlyjs and i == 0, default_height="460px",
                          div_id=f"chart-{anchor}")
        parts.append(f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{div}</section>')
    return "".join(parts)


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n")


def render_plan_html(r: PlanResult) -> str:
    """The whole plan report as one HTML string (plotly.js inlined once)."""
    figs = figures(r)
    gens = _table(["generation", "trained", "chips", "chip", "cluster", "start", "end", "deadline", "on time",
                   "P(on time)", "GPU-hours", "why not trained"],
                  [[g.name, g.trained, g.chips, g.chip, g.cluster, g.start, g.end, g.deadline, g.meets_deadline,
                    g.p_on_time, g.gpu_hours, g.reason] for g in r.generations], text_cols=(11,))
    alloc = _table(["month", "chip", "stock", "usable", "training", "inference", "idle", "rented", "utilisation",
                    "output tok/s"],
                   [[a.month, a.chip, a.stock, a.usable, a.training, a.inference, a.idle, a.rented, _pct(a.utilisation),
                     a.output_tokens_per_s] for a in r.allocation], max_rows=400)
    proc = _table(["order", "arrives", "chip", "cluster", "ordered", "expected delivered", "capex USD"],
                  [[o.order_month, o.arrival_month, o.chip, o.cluster, o.count, o.expected_delivered, o.capex_usd]
                   for o in r.procurement])
    unmet = _table(["workload", "month", "unmet tok/s", "unmet tokens", "fraction"],
                   [[u.workload, u.month, u.output_tokens_per_s, u.output_tokens, u.fraction] for u in r.unmet],
                   max_rows=200)
    binding = _table(["month", "kind", "constraint", "shadow USD", "unit"],
                     [[b.month, b.kind, b.constraint, b.shadow_usd, b.unit] for b in r.binding])
    cost = _table(["item", "USD"], [[k, v] for k, v in r.cost_breakdown_usd.items()])
    rates = _table(["workload / generation", "chip", "output tok/s per GPU", "training tok/s per GPU", "GPU-hours"],
                   [[x.get("workload", x.get("generation")), x["chip"], x.get("output_tokens_per_s_per_gpu"),
                     x.get("tokens_per_s_per_gpu"), x.get("gpu_hours")] for x in r.rates])
    demand = _table(["workload", "month", "demand tok/s", "served tok/s"],
                    [[d.workload, d.month, d.demand_tokens_per_s, d.served_tokens_per_s] for d in r.demand],
                    max_rows=400)
    pairs = _table(["workload", "prefill chip", "decode chip", "cluster", "tok/s per GPU", "prefill share",
                    "source", "months used", "peak GPUs", "why"],
                   [[u.workload, u.prefill_chip, u.decode_chip, u.cluster, u.output_tokens_per_s_per_gpu,
                     _pct(u.prefill_share), u.source, u.months_used, u.peak_gpus, u.reason] for u in r.chip_pairs],
                   cls="pairs", text_cols=(9,))
    nav = " ".join(f"<a href='#{a}'>{html.escape(t.split(':')[0])}</a>" for a, t, _ in figs)
    body = f"""<h1>Fleet plan: {html.escape(r.scenario)}</h1>
<p class="sub">{html.escape(r.start)} + {r.horizon_months} months ({html.escape(r.months[0])} to
{html.escape(r.months[-1])}); solver {html.escape(r.status)}; objective {html.escape(r.objective)};
cost ${r.cost_usd / 1e6:,.1f}M</p>
{_headline(r)}
<section id="key-figures">{key_figures(r)}</section>
<section id="worlds"><h2>Policy worlds</h2>{worlds_section(r)}</section>
<section id="idle-notes"><h2>Idle chips and notes</h2>{idle_and_notes(r)}</section>
{f'<section id="chip-pairs"><h2>Chip pairs (prefill on one chip, decode on another)</h2>{pairs}</section>'
 if r.chip_pairs else ''}
<nav>Charts: {nav}</nav>
{_charts(figs, plotlyjs=True)}
<h2>Training generations</h2>{gens}
<h2>Cost</h2>{cost}
<h2>Procurement</h2>{proc}
<h2>Binding constraints (largest shadow price per month)</h2>{binding}
<h2>Unmet demand</h2>{unmet}
<h2>Allocation per month and chip type</h2>{alloc}
<h2>Demand and service</h2>{demand}
<h2>Rates used</h2>{rates}
<p class="note">Solver status {html.escape(r.status)}; solve {r.solve_seconds:.2f} s; Monte Carlo {r.runway.samples:,}
samples in {r.runway.seconds:.2f} s ({html.escape(r.runway.backend)}). Runway: first month more than
{r.runway.tolerance:.0%} of peak demand goes unmet. Method: docs/fleet-model.md.</p>"""
    return _page(f"Stockpile plan: {r.scenario}", body)


def render_comparison_html(c: Comparison) -> str:
    """Scenarios side by side: the comparison table, a runway-coverage chart on one month axis, and each
    scenario's headline and key figures (plotly.js inlined once)."""
    names = ", ".join(r.scenario for r in c.scenarios)
    table = _table(["scenario", "runway P50", "stock alone P50", "generations trainable P50", "cost USD",
                    "differences from the first"],
                   [[x.scenario, x.runway_p50 or "beyond horizon", x.stock_only_p50 or "-",
                     x.generations_trainable_p50, x.cost_usd, "; ".join(x.differences) or "-"]
                    for x in c.comparison], cls="key", text_cols=(5,))
    chart = _charts([("comparison-coverage", "Runway coverage: P50 of demand served by month",
                      comparison_coverage(c.scenarios))], plotlyjs=True)
    per = []
    for r in c.scenarios:
        worlds = worlds_section(r, shown_below=False) if len(r.runway.worlds) > 1 else ""
        per.append(f"<section class='scenario'><h2>{html.escape(r.scenario)}</h2>"
                   f"<p class='sub'>{html.escape(r.start)} + {r.horizon_months} months; solver "
                   f"{html.escape(r.status)}; cost ${r.cost_usd / 1e6:,.1f}M</p>"
                   f"{_headline(r)}{key_figures(r)}{worlds}</section>")
    body = f"""<h1>Fleet plans compared: {html.escape(names)}</h1>
<p class="sub">Differences are against the first scenario. Write one scenario's full report with
<code>stockpile plan SCENARIO.yaml --report plan.html</code>.</p>
<section id="comparison">{table}</section>
{chart}
{''.join(per)}"""
    return _page(f"Stockpile plans compared: {names}", body)


# ------------------------------------------------------------------ writing
def _write(text_of: Any, obj: Any, path: str | Path) -> Path:
    """Check the path, render, write atomically (temp file in the same folder, then rename)."""
    from stockpile.atomic import write_text_atomic

    p = Path(path)
    if p.is_dir():
        raise InputError("report", f"{p} is a folder; give a file name such as {p / 'plan.html'}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError("report", f"folder {parent} does not exist; create it or write the report elsewhere")
    text = text_of(obj)
    try:
        mode = p.stat().st_mode & 0o777 if p.exists() else 0o666 & ~_umask()
        write_text_atomic(p, text)
        os.chmod(p, mode)            # the temporary file is private (0600); a report is as readable as any file
    except OSError as e:
        raise InputError("report", f"cannot write {p}: {e.strerror or e}") from None
    return p


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_plan_report(r: PlanResult, path: str | Path) -> Path:
    """Write the plan report (atomically); returns the path."""
    return _write(render_plan_html, r, path)


def write_comparison_report(c: Comparison, path: str | Path) -> Path:
    """Write the comparison report for ``plan A.yaml B.yaml --report`` (atomically); returns the path."""
    return _write(render_comparison_html, c, path)
