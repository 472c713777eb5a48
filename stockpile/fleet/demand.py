"""The shape of a workload's day: 24 hourly loads relative to the mean, the levels the MILP sees, and the
integral of unmet demand over the day (docs/fleet-model.md, section 1)."""
from __future__ import annotations

import numpy as np

from stockpile.fleet.scenario import Workload

# The LP sees each workload's day as at most this many load levels (the peak hour exact, the others averaged in
# bins of neighbouring levels, the daily mean kept); reported unmet tokens integrate the full 24-hour profile.
MAX_LEVELS = 8


def daily_profile(wl: Workload) -> np.ndarray:
    """24 hourly loads relative to the daily mean (mean 1). Default: a raised cosine peaking at 1 + a with
    a = peak_to_mean - 1, its trough floored at zero, renormalised to mean 1 (CONTRACTS.md)."""
    if wl.daily_profile is not None:
        p = np.asarray(wl.daily_profile, float)
    else:
        a = wl.peak_to_mean - 1.0
        p = np.maximum(0.0, 1.0 + a * np.cos(2.0 * np.pi * (np.arange(24) - 20) / 24.0))
    return p / p.mean()


def unmet_hour_sum(profile: np.ndarray, mean_rate: np.ndarray, served: np.ndarray) -> np.ndarray:
    """sum over the 24 hours of max(0, demand_h - served capacity), in (tokens/s) x hours; x 3600 x days gives
    the tokens a day leaves unserved. Broadcasts over leading axes of mean_rate / served."""
    d = np.asarray(mean_rate)[..., None] * profile
    return np.maximum(d - np.asarray(served)[..., None], 0.0).sum(axis=-1)


def load_levels(profile: np.ndarray, k_max: int = MAX_LEVELS) -> tuple[np.ndarray, np.ndarray]:
    """The day as ascending levels for the LP: (segment lengths relative to the daily mean, hours above each
    segment). Unmet hour-sum(S) = sum_h max(0, D l_h - S) = 24 D - sum_k n_k z_k with z_k in [0, D len_k] filled
    from the bottom (the LP fills the steepest segment first, so no binaries are needed). The peak level is kept
    exact (the runway is defined at the peak hour); other hours are averaged in bins of sorted neighbours."""
    v = np.sort(np.asarray(profile, float))[::-1]
    bins = [v[:1]] + [b for b in np.array_split(v[1:], max(1, k_max - 1)) if len(b)]
    levels = np.concatenate([np.full(len(b), b.mean()) for b in bins])
    uniq = np.unique(np.round(levels, 12))                            # ascending
    lengths = np.diff(np.concatenate([[0.0], uniq]))
    hours = np.array([(levels >= u - 1e-12).sum() for u in uniq], float)
    return lengths, hours
