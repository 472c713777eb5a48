"""Hypothesis settings for the fuzz targets: no deadline (a case may be a whole search); derandomized in the
default suite so CI is reproducible, random under `make fuzz` (STOCKPILE_FUZZ=1)."""
import os

from hypothesis import HealthCheck, settings

settings.register_profile("stockpile", deadline=None, derandomize=not os.environ.get("STOCKPILE_FUZZ"),
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.load_profile("stockpile")
