"""Chip pairs: a workload served disaggregated with prefill on one chip type and decode on another, as columns of
the fleet problem (docs/fleet-model.md, "Chip pairs"). One column per listed pair (``inference[].chip_pairs``)
and cluster holding both chips; its rate and prefill share are the user's, or the mixed serving search's best
configuration meeting the workload's SLO (:func:`stockpile.fleet.rates.default_pair_rate`)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from stockpile.errors import InputError
from stockpile.fleet.scenario import Scenario


@dataclass
class Duos:
    """Serving columns of chip pairs k: workload w[k] served disaggregated with prefill on pool pre[k] and decode
    on pool dec[k] (same cluster); a GPU of the pair is a prefill chip with probability share[k], and the pair
    gives rate[k] output tokens/s per GPU (both pools counted)."""

    w: np.ndarray
    pre: np.ndarray
    dec: np.ndarray
    share: np.ndarray
    rate: np.ndarray
    given: np.ndarray          # bool: the user's throughput_per_gpu
    note: list[str]

    @property
    def n(self) -> int:
        return len(self.w)

    def pool_coef(self, P: int) -> np.ndarray:
        """(K, P) chips of each pool per GPU of pair k."""
        out = np.zeros((self.n, P))
        out[np.arange(self.n), self.pre] += self.share
        out[np.arange(self.n), self.dec] += 1.0 - self.share
        return out


def no_duos() -> Duos:
    zi = np.zeros(0, int)
    return Duos(w=zi, pre=zi, dec=zi, share=np.zeros(0), rate=np.zeros(0), given=np.zeros(0, bool), note=[])


def compile_duos(s: Scenario, chips: list[str], clusters: list[str], pools: list[tuple[int, int]], notes: list[str],
          pair: Callable[..., Any] | None) -> Duos:
    """One column per workload chip pair and cluster holding a pool of each chip; the pair's rate is the user's
    (throughput_per_gpu, prefill_share) or the mixed serving search's best configuration meeting the SLO."""
    if pair is None:
        from stockpile.fleet.rates import default_pair_rate
        pair = default_pair_rate
    cols: dict[str, list[Any]] = {k: [] for k in ("w", "pre", "dec", "share", "rate", "given", "note")}
    for w, wl in enumerate(s.inference):
        for j, cp in enumerate(wl.chip_pairs):
            a, b = cp.prefill.strip().lower(), cp.decode.strip().lower()
            where = f"inference[{w}].chip_pairs[{j}] ({wl.name}: prefill {a}, decode {b})"
            if a not in chips or b not in chips:
                notes.append(f"{where}: the fleet holds no {a if a not in chips else b} (stock, orders or rental), "
                             "so the pair is not offered")
                continue
            both = [(pools.index((chips.index(a), k)), pools.index((chips.index(b), k)))
                    for k in range(len(clusters))
                    if (chips.index(a), k) in pools and (chips.index(b), k) in pools]
            if not both:
                notes.append(f"{where}: no cluster holds both chips (a pair's KV moves over one cluster's "
                             "network), so the pair is not offered")
                continue
            share, note = cp.prefill_share, "the user's throughput_per_gpu"
            rate = cp.throughput_per_gpu
            if rate is None or share is None:
                found = pair(wl.model, a, b, wl.isl, wl.osl, wl.ttft_ms, wl.tpot_ms, wl.weight_dtype)
                if found is None or not found.tokens_per_s_per_gpu > 0:
                    if rate is not None:
                        raise InputError(f"inference[{w}].chip_pairs[{j}].prefill_share", "the mixed search finds "
                                         f"no configuration of {wl.model} meeting the SLO to take the prefill share "
                                         "from: give prefill_share (the fraction of the pair's GPUs that prefill)")
                    reason = f" ({found.note})" if found is not None and found.note else ""
                    notes.append(f"{where}: no configuration of the pair meets the workload's SLO{reason}; not offered")
                    continue
                share = share if share is not None else found.prefill_share
                note = f"the user's rate, {found.note}" if rate is not None else found.note
                rate = rate if rate is not None else found.tokens_per_s_per_gpu
            for p_pre, p_dec in both:
                for k, v in (("w", w), ("pre", p_pre), ("dec", p_dec), ("share", share), ("rate", rate),
                             ("given", cp.throughput_per_gpu is not None), ("note", note)):
                    cols[k].append(v)
    return Duos(w=np.array(cols["w"], int), pre=np.array(cols["pre"], int), dec=np.array(cols["dec"], int),
                share=np.array(cols["share"], float), rate=np.array(cols["rate"], float),
                given=np.array(cols["given"], bool), note=list(cols["note"]))
