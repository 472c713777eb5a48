"""TensorRT-LLM's batch waiting: the held prompts' mean wait, the rows it applies to, and what it does to a
prediction (perf/serving.ContextHold, calibration/harness.apply_batch_wait)."""
from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest

from stockpile.calibration.harness import apply_batch_wait, script_budget
from stockpile.calibration.inference import Batch, Prepared, prepare_file
from stockpile.calibration.rows import InferenceCase
from stockpile.errors import InputError
from stockpile.perf.calibration import load_calibration
from stockpile.perf.serving import ContextHold, check_batch_wait, held_iterations


def _simulated_wait(lam: float, k: int, timeout: float, holds: int = 20000, seed: int = 1) -> float:
    """Mean wait of held prompts by direct simulation: a hold starts with one prompt and ends when k wait or
    `timeout` iterations after it began; Poisson arrivals of lam per iteration."""
    rng = np.random.default_rng(seed)
    total, count = 0.0, 0
    for _ in range(holds):
        arrivals, t = [0.0], 0.0
        while len(arrivals) < k:
            t += rng.exponential(1.0 / lam)
            if t >= timeout:
                break
            arrivals.append(t)
        end = arrivals[-1] if len(arrivals) >= k else timeout
        total += sum(end - a for a in arrivals)
        count += len(arrivals)
    return total / count


@pytest.mark.parametrize("lam,k,timeout", [(0.125, 7, 40), (0.5, 4, 20), (0.05, 3, 60)])
def test_the_mean_hold_matches_a_direct_simulation(lam, k, timeout):
    assert float(held_iterations(lam, k, timeout)) == pytest.approx(_simulated_wait(lam, k, timeout), rel=0.03)


def test_the_hold_has_the_right_limits():
    assert float(held_iterations(1e-7, 5, 20)) == pytest.approx(20.0, rel=1e-4)      # nobody else comes: timeout
    assert float(held_iterations(200.0, 5, 20)) == pytest.approx(4 / 400.0, rel=1e-3)  # (k - 1) / (2 lam)
    assert float(held_iterations(0.3, 1, 20)) == 0.0                                  # one prompt is enough
    waits = held_iterations(0.1, np.array([1, 2, 4, 8]), 40)
    assert np.all(np.diff(waits) > 0)                                                 # more to gather, longer


def test_no_hold_with_attention_dp_or_nothing_else_decoding():
    hold = ContextHold(iters=20.0, tokens=14746.0)
    assert float(hold.iterations(16.0, 1024.0, 1, 1024.0, 16.0)) > 10.0
    assert float(hold.iterations(16.0, 1024.0, 4, 1024.0, 16.0)) == 0.0     # attention DP balances instead
    assert float(hold.iterations(1.0, 1024.0, 1, 1024.0, 1.0)) == 0.0       # a lone request is never held
    assert ContextHold().iterations(16.0, 1024.0, 1, 1024.0, 16.0) == 0.0


def _case(model: str, chip: str, dtype: str, tp: int, isl: float, osl: float, conc: float, date: str,
          engine: str = "trtllm", notes: str = "aggregated (no disagg)") -> tuple[InferenceCase, str]:
    case = InferenceCase(row_id="r", model=model, chip=chip, gpus=tp, engine=engine, weight_dtype=dtype,
                         kv_dtype=None, tp=tp, pp=1, ep=None, dp=None, isl=isl, osl=osl, concurrency=conc,
                         request_rate=None, scenario="server", metric="ttft_ms", measured=1.0)
    return case, f"{notes}; measured {date}; benchmark harness: InferenceX"


def test_rows_take_batch_waiting_where_their_script_set_it():
    llama = "meta-llama/Llama-3.1-70B-Instruct"
    case, notes = _case(llama, "h200-sxm-141gb", "fp8", 2, 1024, 1024, 16, "2025-10-10")
    assert apply_batch_wait(case, notes) and case.batch_wait == (20, pytest.approx(0.9 * 16384))
    case, notes = _case(llama, "h200-sxm-141gb", "fp8", 8, 1024, 1024, 16, "2025-10-10")
    assert not apply_batch_wait(case, notes) and case.batch_wait is None          # the script's TP < 8 only
    case, notes = _case(llama, "h200-sxm-141gb", "fp8", 2, 1024, 8192, 16, "2025-10-10")
    assert not apply_batch_wait(case, notes)                                      # 1k/1k only
    case, notes = _case(llama, "h200-sxm-141gb", "fp8", 2, 1024, 1024, 16, "2025-09-01")
    assert not apply_batch_wait(case, notes)                                      # before the setting
    dsr1 = "deepseek-ai/DeepSeek-R1"
    case, notes = _case(dsr1, "b200-sxm-180gb", "fp8", 8, 1024, 1024, 128, "2026-02-07")
    assert apply_batch_wait(case, notes) and case.batch_wait == (40, pytest.approx(0.8 * 8192))
    case, notes = _case(dsr1, "b200-sxm-180gb", "fp8", 8, 1024, 1024, 32, "2026-02-07")
    assert not apply_batch_wait(case, notes)                                      # concurrency >= 64 only
    case, notes = _case(dsr1, "b200-sxm-180gb", "fp8", 8, 1024, 1024, 128, "2026-01-20")
    assert not apply_batch_wait(case, notes)
    case, notes = _case(dsr1, "b200-sxm-180gb", "fp8", 8, 1024, 1024, 128, "2026-02-07", engine="sglang")
    assert not apply_batch_wait(case, notes)
    case, notes = _case(dsr1, "b200-sxm-180gb", "fp8", 8, 1024, 1024, 128, "2026-02-07",
                        notes="disaggregated prefill/decode")
    assert not apply_batch_wait(case, notes)


def test_the_scripts_token_budget_follows_their_shell_arithmetic():
    case, _ = _case("deepseek-ai/DeepSeek-R1", "h200-sxm-141gb", "fp8", 8, 1024, 1024, 64, "2025-11-01")
    assert script_budget("conc+isl", None, case) == 1152            # (64 + 1024 + 127) // 64 * 64
    assert script_budget("conc+isl", 8192, case) == 8192
    assert script_budget(16384, None, case) == 16384


def test_batch_waiting_settings_are_checked():
    check_batch_wait("trtllm", 40, 6553)
    with pytest.raises(InputError, match="batch_wait_tokens"):
        check_batch_wait("trtllm", 40, 0)
    with pytest.raises(InputError, match="batch_wait_iters"):
        check_batch_wait("vllm", 40, 6553)
    with pytest.raises(InputError, match="batch_wait_iters"):
        check_batch_wait("trtllm", -1, 0)


def test_the_held_rows_of_the_aic_sample_come_closer_to_their_measurements():
    """The rows whose scripts hold prompts (Llama-3.1-70B 1k/1k below TP8; DeepSeek-R1 FP8 on B200 1k/1k from
    concurrency 64): their TTFT error with the hold against without it, on the shipped calibration."""
    path = str(resources.files("stockpile") / "data" / "measurements" / "aic_silicon_sample.csv")
    _, _, preps = prepare_file(path)
    held = [p for p in preps if isinstance(p, Prepared) and p.case.batch_wait and p.case.metric == "ttft_ms"]
    assert len(held) >= 8
    cal = load_calibration()
    with_hold = Batch(held).run(cal)
    for p in held:
        p.case.batch_wait = None
    without = Batch(held).run(cal)
    err = [abs(math.log(v / p.case.measured)) for v, p in zip(with_hold, held)]
    err0 = [abs(math.log(v / p.case.measured)) for v, p in zip(without, held)]
    assert np.median(err) < 0.5 * np.median(err0)
    assert sum(e < e0 for e, e0 in zip(err, err0)) >= 0.75 * len(held)
