"""Stockpile: how far a fixed stock of accelerators goes, and how to get the most out of each one.

The public API is small and stable; everything else is internal.
Data flows one way: catalog -> perf -> search -> fleet -> interfaces.
"""
from stockpile.errors import StockpileError

__version__ = "0.1.0"

__all__ = ["StockpileError", "__version__"]
