"""A burst's mean TPOT as benchmarks report it: the mean of each request's own (e2e - TTFT) / (n - 1), which counts
the short requests' share of the prompt ramp in full (perf/serving.py, docs/inference-model.md section 4)."""
import numpy as np
import pytest

from stockpile.perf.calibration import default_calibration
from stockpile.perf.inference import estimate
from stockpile.perf.layout import resolve_layout

PRIORS = default_calibration()


def est(model, chip, **kw):
    base = dict(layout=resolve_layout(gpus=1), engine="vllm", weight_dtype="bf16", kv_dtype="bf16", isl=512, osl=256,
                calibration=PRIORS)
    base.update(kw)
    return estimate(model, chip, **base)


def test_a_varied_length_burst_reports_the_mean_of_each_requests_tpot():
    """A benchmark's mean TPOT averages each request's own (e2e - TTFT) / (n - 1): with exponential output lengths
    the short requests that finish inside the prompt ramp weigh as much as the long ones. The ramp's share of it,
    averaged over when a request was admitted, is G(rho) (serving.ramp_share_varied), checked against numerical
    integration of g(r) = 1 - e^-r + r E1(r), the share for r = ramp steps left / mean length."""
    from scipy.integrate import quad
    from scipy.special import exp1

    from stockpile.perf.serving import ramp_share_varied
    for rho in (1e-4, 1e-3, 0.02, 0.3, 1.0, 4.0, 50.0):
        want = quad(lambda r: 1.0 - np.exp(-r) + r * exp1(r), 0.0, rho)[0] / rho
        assert float(ramp_share_varied(rho)) == pytest.approx(want, rel=1e-6)
        assert want < 1.0 and (rho > 1.0 or want > rho / 2.0)     # a short ramp: above the ratio of the means
    assert float(ramp_share_varied(1e6)) == pytest.approx(1.0, abs=1e-5)


def test_the_inverse_mean_of_geometric_lengths():
    """E[1 / k] for k = k_min - 1 + a geometric count: k_min 1 is the plain geometric; the default, 3, is what a
    benchmark samples from a conversation dataset (vLLM's ShareGPT sampler drops outputs under 4 tokens)."""
    from stockpile.perf.serving import MIN_DECODE, inverse_mean_geometric
    assert MIN_DECODE == 3
    for k_min in (1, 3):
        for mean in (k_min + 0.5, 10.0, 200.0):
            p = 1.0 / (mean - k_min + 1)
            j = np.arange(1, 400_000)
            want = float(np.sum(p * (1 - p) ** (j - 1) / (k_min - 1 + j)))
            assert float(inverse_mean_geometric(mean, k_min)) == pytest.approx(want, rel=1e-6)
    assert float(inverse_mean_geometric(2.0)) == 0.5            # a mean below the minimum: its own inverse
    assert 5.0 / 200.0 > float(inverse_mean_geometric(200.0)) > 3.0 / 200.0   # about ln(L) / L less the short tail
    assert inverse_mean_geometric(np.array([[5.0, 200.0], [3.0, 1000.0]])).shape == (2, 2)


@pytest.mark.parametrize("engine", ["sglang", "trtllm"])
def test_a_varied_length_burst_counts_its_short_requests_in_tpot(tiny_model, tiny_chip, engine):
    """SGLang runs waiting prompts first: every admitted request's second token waits for the ramp to end, which
    a short request's mean TPOT carries in full. TensorRT-LLM puts prompts into decode steps: a short request may
    finish inside the ramp at its slower steps. Either way the mean of the requests' own TPOTs exceeds the
    fixed-length one, and TTFT does not change."""
    kw = dict(engine=engine, num_requests=256, isl=512, osl=128)
    fixed = est(tiny_model, tiny_chip, **kw)
    varied = est(tiny_model, tiny_chip, length_spread=float("inf"), **kw)
    assert fixed.batch == pytest.approx(256) and varied.batch == pytest.approx(256)   # one wave: the ramp matters
    assert varied.tpot_ms > fixed.tpot_ms
    assert varied.ttft_ms == pytest.approx(fixed.ttft_ms)
