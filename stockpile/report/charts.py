"""The report's plotly charts. Every chart over months uses a date x axis whose values are month strings
('2025-03') or dates ('2025-03-16 12:00'), never month indices: a number on a date axis is read as milliseconds
since 1970 and stretches the axis back to 1970 (the old runway-fan bug).

Reads only :mod:`stockpile.fleet.result` records; plotly is imported lazily, when a report is written.
"""
from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from stockpile.errors import InputError
from stockpile.fleet.result import PlanResult

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
           "#756bb1", "#636363"]
FAN_ID = "runway-fan"


def plotly() -> Any:
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        raise InputError("report", "the HTML report needs plotly (pip install plotly)") from None
    return go, make_subplots


# ------------------------------------------------------------------ month axis helpers
def month_date(month: str, fraction: float = 0.0) -> datetime:
    """'2025-03' plus a fraction of that month, as a datetime."""
    y, m = (int(x) for x in month[:7].split("-"))
    days = calendar.monthrange(y, m)[1]
    return datetime(y, m, 1) + timedelta(days=days * fraction)


def month_plus(start: str, months: float) -> datetime:
    """The date `months` (fractional) after the start of month `start` (the plan's month-fraction clock)."""
    y, m = (int(x) for x in start[:7].split("-"))
    whole = int(months // 1)
    k = (m - 1) + whole
    return month_date(f"{y + k // 12:04d}-{k % 12 + 1:02d}", months - whole)


def iso(d: datetime) -> str:
    return d.strftime("%Y-%m-%d %H:%M")


def _month_axes(fig: Any) -> None:
    """Declare every x axis a date axis (month strings are then never mistaken for categories)."""
    fig.update_xaxes(type="date")


def _vmarker(fig: Any, month: str, text: str, color: str = "#555", row: int | None = None) -> None:
    """A vertical dotted line at the start of `month` with a label at the top (x is the month string)."""
    fig.add_shape(type="line", x0=month, x1=month, y0=0, y1=1, xref="x", yref="paper",
                  line={"color": color, "dash": "dot", "width": 1.5})
    fig.add_annotation(x=month, y=1, xref="x", yref="paper", text=text, showarrow=False, xanchor="left",
                       yanchor="top", textangle=-90, font={"size": 12, "color": color},
                       bgcolor="rgba(255,255,255,0.8)")


def _markers(pairs: list[tuple[str, str | None]], months: list[str]) -> dict[str, list[str]]:
    """Labels grouped by month (one line per month even when P50 and the plan fall in the same month)."""
    at: dict[str, list[str]] = defaultdict(list)
    for label, m in pairs:
        if m is not None and m in months:
            at[m].append(label)
    return at


# ------------------------------------------------------------------ the plan's charts
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


def runway_fan(r: PlanResult) -> Any:
    """P10-P90 band and P50 of the share of demand served per month, P(meets demand) on the right axis,
    dotted lines at the runway months (plan and stock alone) that fall inside the horizon."""
    go, make_subplots = plotly()
    months, rw = r.months, r.runway
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if rw.coverage_p50:
        fig.add_trace(go.Scatter(x=months, y=rw.coverage_p90, line={"width": 0}, showlegend=False,
                                 hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=months, y=rw.coverage_p10, fill="tonexty", fillcolor="rgba(31,119,180,0.25)",
                                 line={"width": 0}, name="P10-P90 of demand served"))
        fig.add_trace(go.Scatter(x=months, y=rw.coverage_p50, name="P50 of demand served",
                                 line={"color": "#1f77b4", "width": 2.5}))
        fig.add_trace(go.Scatter(x=months, y=rw.p_met_by_month, name="P(meets demand)",
                                 line={"color": "#d62728", "dash": "dash"}), secondary_y=True)
    else:
        served = plan_coverage(r)
        fig.add_trace(go.Scatter(x=months, y=served, name="demand served by the plan (no Monte Carlo)",
                                 line={"color": "#1f77b4", "width": 2.5}))
    fig.add_hline(y=1.0 - rw.tolerance, line={"color": "#999", "width": 1}, annotation_text="demand met",
                  annotation_position="bottom left")
    so = rw.stock_only
    pairs = [("P10", rw.p10), ("P50", rw.p50), ("P90", rw.p90), ("plan", rw.deterministic)]
    for month, labels in _markers(pairs, months).items():
        _vmarker(fig, month, f"runway {', '.join(labels)} {month}")
    if so is not None:
        for month, labels in _markers([("P10", so.p10), ("P50", so.p50), ("P90", so.p90)], months).items():
            _vmarker(fig, month, f"stock alone {', '.join(labels)} {month}", color="#8c564b")
    fig.update_layout(hovermode="x unified", legend={"orientation": "h", "y": -0.12})
    low = min(rw.coverage_p10 or plan_coverage(r) or [0.0])
    bottom = max(0.0, min(0.9, low) - 0.05)
    fig.update_yaxes(title_text="share of demand served (peak hour)", range=[bottom, 1.02], tickformat=".0%",
                     secondary_y=False)
    fig.update_yaxes(title_text="P(meets demand)", range=[0, 1.02], tickformat=".0%", tickmode="linear", dtick=0.2,
                     secondary_y=True, showgrid=False)
    _month_axes(fig)
    return fig


def plan_coverage(r: PlanResult) -> list[float]:
    """Share of peak demand the plan itself serves per month (from the demand rows)."""
    mi = {m: i for i, m in enumerate(r.months)}
    dem, srv = [0.0] * len(r.months), [0.0] * len(r.months)
    for d in r.demand:
        dem[mi[d.month]] += d.demand_tokens_per_s
        srv[mi[d.month]] += d.served_tokens_per_s
    return [round(s / d, 4) if d > 0 else 1.0 for s, d in zip(srv, dem)]


def figures(r: PlanResult) -> list[tuple[str, str, Any]]:
    """(anchor id, title, plotly figure) for each chart of the plan report."""
    go, make_subplots = plotly()
    months = r.months
    chips = list(dict.fromkeys(a.chip for a in r.allocation))
    color = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(chips)}
    workloads = list(dict.fromkeys(d.workload for d in r.demand))
    mi = {m: i for i, m in enumerate(months)}
    out: list[tuple[str, str, Any]] = [(FAN_ID, "Runway fan: demand served under uncertainty", runway_fan(r))]

    # capacity vs demand by chip type
    served: dict[str, list[float]] = {c: [0.0] * len(months) for c in chips}
    potential = [0.0] * len(months)
    rbar = _mean_rates(r)
    for a in r.allocation:
        served[a.chip][mi[a.month]] += a.output_tokens_per_s
        potential[mi[a.month]] += max(0, a.usable - a.training) * rbar.get(a.chip, 0.0)
    demand = [0.0] * len(months)
    for d in r.demand:
        demand[mi[d.month]] += d.demand_tokens_per_s
    fig = go.Figure()
    for c in chips:
        fig.add_trace(go.Scatter(x=months, y=served[c], name=c, stackgroup="served",
                                 line={"width": 0.5, "color": color[c]}))
    fig.add_trace(go.Scatter(x=months, y=demand, name="demand (peak hour)", line={"color": "black", "width": 3}))
    fig.add_trace(go.Scatter(x=months, y=potential, name="capacity if every usable chip served",
                             line={"color": "black", "dash": "dot"}))
    fig.update_layout(yaxis_title="output tokens/s", hovermode="x unified")
    _month_axes(fig)
    out.append(("capacity", "Served capacity vs demand, by chip type", fig))

    # allocation: the whole fleet by use, then per chip type
    uses = ["training"] + workloads + ["idle"]

    def use_color(i: int, u: str) -> str:
        return "#444444" if u == "training" else "#cccccc" if u == "idle" else PALETTE[(i + 3) % len(PALETTE)]
    total = {u: [0.0] * len(months) for u in uses}
    for a in r.allocation:
        t = mi[a.month]
        total["training"][t] += a.training
        total["idle"][t] += a.idle
        for w, n in a.inference.items():
            total[w][t] += n
    fig = go.Figure()
    for i, u in enumerate(uses):
        fig.add_trace(go.Scatter(x=months, y=total[u], name=u, stackgroup="alloc",
                                 line={"width": 0.5, "color": use_color(i, u)}))
    fig.update_layout(yaxis_title="chips", hovermode="x unified")
    _month_axes(fig)
    out.append(("allocation", "Fleet allocation: training, each workload, idle", fig))
    if chips:
        top = sorted(chips, key=lambda c: -max(a.stock for a in r.allocation if a.chip == c))[:8]
        fig = make_subplots(rows=len(top), cols=1, shared_xaxes=True, subplot_titles=top, vertical_spacing=0.04)
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
                fig.add_trace(go.Scatter(x=months, y=per[u], name=u, stackgroup=f"s{row}", legendgroup=u,
                                         showlegend=row == 1, line={"width": 0.5, "color": use_color(i, u)}),
                              row=row, col=1)
        fig.update_layout(height=max(300, 220 * len(top)), hovermode="x unified")
        _month_axes(fig)
        out.append(("allocation-per-chip", "Allocation per chip type (largest eight)", fig))

    # training Gantt: bars from the run's start to its end (month fractions -> dates), deadline ticks
    if r.generations:
        fig = go.Figure()
        for g in r.generations:
            if g.trained and g.start is not None and g.end_month_fraction is not None:
                t0 = month_date(g.start)
                t1 = month_plus(months[0], g.end_month_fraction)
                fig.add_trace(go.Bar(
                    y=[g.name], base=[iso(t0)], x=[(t1 - t0).total_seconds() * 1000.0], orientation="h",
                    marker_color=color.get(g.chip or "", "#888"), name=f"{g.name}: {g.chips:,} x {g.chip}",
                    hovertext=f"{g.chips:,} x {g.chip} @ {g.cluster}, {g.start} -> {g.end}", hoverinfo="text"))
            deadline_end = iso(month_date(g.deadline, 1.0))
            fig.add_trace(go.Scatter(x=[deadline_end], y=[g.name], mode="markers", showlegend=False,
                                     name=f"{g.name} deadline", hovertext=f"deadline: end of {g.deadline}",
                                     hoverinfo="text", marker={"symbol": "line-ns-open", "size": 26, "color": "red",
                                                               "line": {"width": 3}}))
        fig.update_layout(barmode="overlay", xaxis_title="month (red tick: end of the deadline month)",
                          height=max(260, 90 + 60 * len(r.generations)),
                          xaxis_range=[months[0], iso(month_date(months[-1], 1.0))])
        _month_axes(fig)
        out.append(("training", "Training runs (Gantt) and deadlines", fig))

    # cost
    fig = go.Figure()
    for key, col in (("energy", "#2ca02c"), ("procurement_capex", "#1f77b4"), ("rental", "#ff7f0e")):
        fig.add_trace(go.Bar(x=[c["month"] for c in r.cost_by_month], y=[c[key] for c in r.cost_by_month],
                             name=key, marker_color=col))
    fig.update_layout(barmode="stack", yaxis_title="USD")
    _month_axes(fig)
    out.append(("cost", "Cost by month", fig))
    return out


# ------------------------------------------------------------------ comparison
def comparison_coverage(results: list[PlanResult]) -> Any:
    """P50 of demand served by month, one line per scenario, on one month axis (the plan's own coverage for a
    scenario planned without Monte Carlo)."""
    go, _ = plotly()
    fig = go.Figure()
    tol = min((r.runway.tolerance for r in results), default=0.01)
    for i, r in enumerate(results):
        col = PALETTE[i % len(PALETTE)]
        sampled = bool(r.runway.coverage_p50)
        y = r.runway.coverage_p50 if sampled else plan_coverage(r)
        fig.add_trace(go.Scatter(x=r.months, y=y, name=r.scenario + ("" if sampled else " (plan, no Monte Carlo)"),
                                 line={"color": col, "width": 2.5}))
        if r.runway.p50 is not None and r.runway.p50 in r.months:
            _vmarker(fig, r.runway.p50, f"{r.scenario}: runway P50 {r.runway.p50}", color=col)
    fig.add_hline(y=1.0 - tol, line={"color": "#999", "width": 1}, annotation_text="demand met",
                  annotation_position="bottom left")
    low = min((min(t.y) for t in fig.data if len(t.y)), default=0.0)
    fig.update_layout(hovermode="x unified", legend={"orientation": "h", "y": -0.12},
                      yaxis={"title": "P50 of demand served (peak hour)", "tickformat": ".0%",
                             "range": [max(0.0, min(0.9, low) - 0.05), 1.02]})
    _month_axes(fig)
    return fig
