"""Reports: self-contained HTML with plotly charts (plotly is imported only when a report is written)."""
from __future__ import annotations

from typing import Any

__all__ = ["render_comparison_html", "render_plan_html", "write_comparison_report", "write_plan_report"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from stockpile.report import plan_html
        return getattr(plan_html, name)
    raise AttributeError(f"module 'stockpile.report' has no attribute '{name}'")
