"""Self-contained HTML report of a fleet plan: plotly charts (plotly.js inlined once) and the tables behind them.

Charts: served capacity vs demand by chip type; fleet allocation (stacked areas, overall and per chip type);
training Gantt with deadlines; runway fan (P10/P50/P90 of demand served, probability of meeting demand);
cost by month. Reads only a :class:`stockpile.fleet.result.PlanResult`; plotly is imported here, lazily.
"""
from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path
from typing import Any

from stockpile.errors import InputError
from stockpile.fleet.result import PlanResult

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
           "#756bb1", "#636363"]


def _plotly() -> Any:
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        raise InputError("report", "the HTML report needs plotly (pip install plotly)") from None
    return go, make_subplots


def _table(headers: list[str], rows: list[list[Any]], max_rows: int | None = None) -> str:
    body = rows if max_rows is None else rows[:max_rows]
    out = ["<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr></thead><tbody>"]
    for r in body:
        out.append("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in r) + "</tr>")
    out.append("</tbody></table>")
    if max_rows is not None and len(rows) > max_rows:
        out.append(f"<p class='note'>{len(rows) - max_rows} more rows in the JSON output (plan --json).</p>")
    return "".join(out)


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


def _mean_rates(r: PlanResult) -> dict[str, float]:
    """Demand-weighted mean output tokens/s per GPU of each chip type over the workloads."""
    weight: dict[str, float] = defaultdict(float)
    for d in r.demand:
        weight[d.workload] += d.demand_tokens_per_s
    num: dict[str, float] = defaultdict(float)
    den: dict[str, float] = defaultdict(float)
    for x in r.rates:
        if "workload" in x:
            w = weight.get(x["workload"], 0.0)
            num[x["chip"]] += w * x["output_tokens_per_s_per_gpu"]
            den[x["chip"]] += w
    return {c: num[c] / den[c] for c in num if den[c] > 0}


def figures(r: PlanResult) -> list[tuple[str, Any]]:
    """(title, plotly figure) for each chart of the report."""
    go, make_subplots = _plotly()
    months = r.months
    chips = list(dict.fromkeys(a.chip for a in r.allocation))
    color = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(chips)}
    workloads = list(dict.fromkeys(d.workload for d in r.demand))
    out: list[tuple[str, Any]] = []

    # 1. capacity vs demand by chip type
    served: dict[str, list[float]] = {c: [0.0] * len(months) for c in chips}
    potential = [0.0] * len(months)
    rbar = _mean_rates(r)
    mi = {m: i for i, m in enumerate(months)}
    for a in r.allocation:
        served[a.chip][mi[a.month]] += a.output_tokens_per_s
        potential[mi[a.month]] += max(0, a.usable - a.training) * rbar.get(a.chip, 0.0)
    demand = [0.0] * len(months)
    for d in r.demand:
        demand[mi[d.month]] += d.demand_tokens_per_s
    fig = go.Figure()
    for c in chips:
        fig.add_trace(go.Scatter(x=months, y=served[c], name=c, stackgroup="served", line={"width": 0.5, "color": color[c]}))
    fig.add_trace(go.Scatter(x=months, y=demand, name="demand (peak hour)", line={"color": "black", "width": 3}))
    fig.add_trace(go.Scatter(x=months, y=potential, name="capacity if every usable chip served",
                             line={"color": "black", "dash": "dot"}))
    fig.update_layout(yaxis_title="output tokens/s", hovermode="x unified")
    out.append(("Served capacity vs demand, by chip type", fig))

    # 2. allocation: the whole fleet by use, then per chip type
    uses = ["training"] + workloads + ["idle"]
    total = {u: [0.0] * len(months) for u in uses}
    for a in r.allocation:
        t = mi[a.month]
        total["training"][t] += a.training
        total["idle"][t] += a.idle
        for w, n in a.inference.items():
            total[w][t] += n
    fig = go.Figure()
    for i, u in enumerate(uses):
        col = "#444444" if u == "training" else "#dddddd" if u == "idle" else PALETTE[(i + 3) % len(PALETTE)]
        fig.add_trace(go.Scatter(x=months, y=total[u], name=u, stackgroup="alloc", line={"width": 0.5, "color": col}))
    fig.update_layout(yaxis_title="chips", hovermode="x unified")
    out.append(("Fleet allocation: training, each workload, idle", fig))
    top = sorted(chips, key=lambda c: -max(a.stock for a in r.allocation if a.chip == c))[:8]
    fig = make_subplots(rows=len(top), cols=1, shared_xaxes=True, subplot_titles=top, vertical_spacing=0.03)
    for row, c in enumerate(top, start=1):
        per = {u: [0.0] * len(months) for u in uses}
        for a in r.allocation:
            if a.chip != c:
                continue
            t = mi[a.month]
            per["training"][t], per["idle"][t] = a.training, a.idle
            for w, n in a.inference.items():
                per[w][t] = n
        for i, u in enumerate(uses):
            col = "#444444" if u == "training" else "#dddddd" if u == "idle" else PALETTE[(i + 3) % len(PALETTE)]
            fig.add_trace(go.Scatter(x=months, y=per[u], name=u, stackgroup=f"s{row}", legendgroup=u,
                                     showlegend=row == 1, line={"width": 0.5, "color": col}), row=row, col=1)
    fig.update_layout(height=220 * len(top), hovermode="x unified")
    out.append(("Allocation per chip type (largest eight)", fig))

    # 3. training Gantt
    fig = go.Figure()
    for g in r.generations:
        if g.trained and g.end_month_fraction is not None and g.start is not None:
            s0 = mi[g.start]
            fig.add_trace(go.Bar(y=[g.name], x=[g.end_month_fraction - s0], base=[s0], orientation="h",
                                 marker_color=color.get(g.chip or "", "#888"), name=f"{g.name}: {g.chips} x {g.chip}",
                                 hovertext=f"{g.chips} x {g.chip} @ {g.cluster}, {g.start} -> {g.end}"))
        dl = months.index(g.deadline) + 1 if g.deadline in months else len(months)
        fig.add_trace(go.Scatter(x=[dl], y=[g.name], mode="markers", marker={"symbol": "line-ns-open", "size": 24,
                                 "color": "red", "line": {"width": 3}}, name=f"{g.name} deadline", showlegend=False))
    fig.update_layout(xaxis={"tickmode": "array", "tickvals": list(range(len(months))), "ticktext": months,
                                 "title": "month (red tick: end of the deadline month)"}, barmode="overlay")
    out.append(("Training runs (Gantt) and deadlines", fig))

    # 4. runway fan
    rw = r.runway
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if rw.coverage_p50:
        fig.add_trace(go.Scatter(x=months, y=rw.coverage_p90, line={"width": 0}, showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=months, y=rw.coverage_p10, fill="tonexty", fillcolor="rgba(31,119,180,0.25)",
                                 line={"width": 0}, name="P10-P90 of demand served"))
        fig.add_trace(go.Scatter(x=months, y=rw.coverage_p50, name="P50 of demand served", line={"color": "#1f77b4"}))
        fig.add_trace(go.Scatter(x=months, y=rw.p_met_by_month, name="P(meets demand)", line={"color": "#d62728",
                                 "dash": "dash"}), secondary_y=True)
    for label, m in (("P10", rw.p10), ("P50", rw.p50), ("P90", rw.p90), ("plan", rw.deterministic)):
        if m in months:
            fig.add_vline(x=months.index(m), line_dash="dot", annotation_text=f"runway {label} {m}")
    fig.update_layout(hovermode="x unified")
    fig.update_yaxes(title_text="fraction of demand served", secondary_y=False)
    fig.update_yaxes(title_text="probability", range=[0, 1.05], secondary_y=True)
    out.append(("Runway fan: demand served under uncertainty", fig))

    # 5. cost
    fig = go.Figure()
    for key, col in (("energy", "#2ca02c"), ("procurement_capex", "#1f77b4"), ("rental", "#ff7f0e")):
        fig.add_trace(go.Bar(x=months, y=[c[key] for c in r.cost_by_month], name=key, marker_color=col))
    fig.update_layout(barmode="stack", yaxis_title="USD")
    out.append(("Cost by month", fig))
    return out


def render_plan_html(r: PlanResult) -> str:
    """The whole report as one HTML string (plotly.js inlined in the first chart)."""
    figs = figures(r)
    parts = []
    for i, (title, fig) in enumerate(figs):
        fig.update_layout(template="plotly_white", margin={"l": 60, "r": 20, "t": 30, "b": 40})
        div = fig.to_html(full_html=False, include_plotlyjs=(i == 0), default_height="460px")
        parts.append(f"<h2>{html.escape(title)}</h2>{div}")
    summary = html.escape(r.summary())
    gens = _table(["generation", "trained", "chips", "chip", "cluster", "start", "end", "deadline", "on time",
                   "P(on time)", "GPU-hours"],
                  [[g.name, g.trained, g.chips, g.chip, g.cluster, g.start, g.end, g.deadline, g.meets_deadline,
                    g.p_on_time, g.gpu_hours] for g in r.generations])
    alloc = _table(["month", "chip", "stock", "usable", "training", "inference", "idle", "rented", "utilisation",
                    "output tok/s"],
                   [[a.month, a.chip, a.stock, a.usable, a.training, a.inference, a.idle, a.rented, a.utilisation,
                     a.output_tokens_per_s] for a in r.allocation], max_rows=400)
    proc = _table(["order", "arrives", "chip", "cluster", "ordered", "expected delivered", "capex USD"],
                  [[o.order_month, o.arrival_month, o.chip, o.cluster, o.count, o.expected_delivered, o.capex_usd]
                   for o in r.procurement])
    unmet = _table(["workload", "month", "unmet tok/s", "fraction"],
                   [[u.workload, u.month, u.output_tokens_per_s, u.fraction] for u in r.unmet], max_rows=200)
    binding = _table(["month", "kind", "constraint", "shadow USD", "unit"],
                     [[b.month, b.kind, b.constraint, b.shadow_usd, b.unit] for b in r.binding])
    cost = _table(["item", "USD"], [[k, v] for k, v in r.cost_breakdown_usd.items()])
    rates = _table(["workload / generation", "chip", "output tok/s per GPU", "training tok/s per GPU", "GPU-hours"],
                   [[x.get("workload", x.get("generation")), x["chip"], x.get("output_tokens_per_s_per_gpu"),
                     x.get("tokens_per_s_per_gpu"), x.get("gpu_hours")] for x in r.rates])
    demand = _table(["workload", "month", "demand tok/s", "served tok/s"],
                    [[d.workload, d.month, d.demand_tokens_per_s, d.served_tokens_per_s] for d in r.demand],
                    max_rows=400)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Stockpile plan: {html.escape(r.scenario)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }}
pre {{ background: #f6f8fa; padding: 12px; border-radius: 6px; white-space: pre-wrap; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 8px 0 24px; }}
th, td {{ border: 1px solid #ddd; padding: 3px 8px; text-align: right; }}
th {{ background: #f0f0f0; }} td:first-child, th:first-child {{ text-align: left; }}
.note {{ color: #666; font-size: 13px; }}
</style></head><body>
<h1>Fleet plan: {html.escape(r.scenario)}</h1>
<pre>{summary}</pre>
{''.join(parts)}
<h2>Training generations</h2>{gens}
<h2>Cost</h2>{cost}
<h2>Procurement</h2>{proc}
<h2>Binding constraints (largest shadow price per month)</h2>{binding}
<h2>Unmet demand</h2>{unmet}
<h2>Allocation per month and chip type</h2>{alloc}
<h2>Demand and service</h2>{demand}
<h2>Rates used</h2>{rates}
<p class="note">Solver status {html.escape(r.status)}; solve {r.solve_seconds:.2f} s; Monte Carlo {r.runway.samples}
samples in {r.runway.seconds:.2f} s ({html.escape(r.runway.backend)}). Method: docs/fleet-model.md.</p>
</body></html>
"""


def write_plan_report(r: PlanResult, path: str | Path) -> Path:
    """Write the report; returns the path."""
    p = Path(path)
    p.write_text(render_plan_html(r), encoding="utf-8")
    return p
