"""The scheduler simulation (perf/simulate.py) on engines whose step time is written down in the test, so every
expected value is worked out by hand; then its agreement with the analytic steady state on a real model."""
from __future__ import annotations

import numpy as np
import pytest

from stockpile.perf.simulate import EngineSpec, Requests, burst_arrivals, poisson_arrivals, simulate

STEP_S, PER_TOKEN_S, PER_SEQ_S = 0.002, 2e-5, 5e-5      # step time = fixed + prompt tokens + decoding seqs


def step(pre: float, dec: float, ctx: float) -> float:
    return STEP_S + PER_TOKEN_S * pre + PER_SEQ_S * dec


def engine(policy: str = "mixed", **kw) -> EngineSpec:
    args = dict(step=step, kv_tokens=1e9, max_seqs=256, budget=4096, policy=policy, fixed_s=0.01)
    args.update(kw)
    return EngineSpec(**args)


def capacity(eng: EngineSpec, isl: int, osl: int) -> float:
    """Requests/s the engine sustains: a long burst's completion rate, ramp and drain excluded."""
    res = simulate(eng, burst_arrivals(3000, isl=isl, osl=osl))
    done = np.sort(res.e2e)                     # all arrived at 0: completion times
    return (2000 - 1000) / (done[1999] - done[999])


def test_one_request_alone_is_prefill_then_decode_steps():
    # one request, isl 1000, osl 11: a prefill step (2 ms + 1000 x 20 us = 22 ms), then 10 decode steps of
    # 2.05 ms; TTFT adds the fixed 10 ms
    res = simulate(engine(), Requests(np.array([0.0]), np.array([1000]), np.array([11]), np.array([0])))
    assert res.ttft[0] == pytest.approx(0.022 + 0.01)
    assert res.tpot[0] == pytest.approx(0.00205)
    assert res.e2e[0] == pytest.approx(0.022 + 10 * 0.00205 + 0.01)
    assert res.completed == 1 and res.backlog == 0


def test_chunked_prefill_splits_a_long_prompt_over_the_budget():
    # 10,000-token prompt, budget 4096: three steps of 4096, 4096, 1808 tokens
    res = simulate(engine(), Requests(np.array([0.0]), np.array([10000]), np.array([2]), np.array([0])))
    expect = 3 * STEP_S + PER_TOKEN_S * 10000
    assert res.ttft[0] == pytest.approx(expect + 0.01)


def test_prefix_cache_hit_skips_cached_prompt_tokens():
    res = simulate(engine(), Requests(np.array([0.0]), np.array([1000]), np.array([2]), np.array([600])))
    assert res.ttft[0] == pytest.approx(STEP_S + PER_TOKEN_S * 400 + 0.01)


@pytest.mark.parametrize("policy", ["mixed", "prefill_first"])
def test_light_load_ttft_is_one_prefill_plus_fixed_cost_and_does_not_grow_with_the_run(policy):
    # a fixed cost per request of 20 ms (front end, tokenising, streaming; vLLM's fitted value is 15 ms). The rest
    # of the wait is half a step for the one running, the decodes sharing the prefill step, and the prefill queue
    eng = engine(policy, fixed_s=0.02)
    cap = capacity(eng, 1000, 100)
    rate = 0.3 * cap
    one = STEP_S + PER_TOKEN_S * 1000 + eng.fixed_s           # one request's prefill + the fixed cost
    short = simulate(eng, poisson_arrivals(rate, 500, isl=1000, osl=100, seed=3))
    long = simulate(eng, poisson_arrivals(rate, 4000, isl=1000, osl=100, seed=3))
    for res in (short, long):
        assert np.mean(res.ttft) == pytest.approx(one, rel=0.2)
        assert res.backlog == 0 and not res.growing
    assert np.mean(long.ttft) == pytest.approx(np.mean(short.ttft), rel=0.1)
    assert long.requests_per_s == pytest.approx(rate, rel=0.05)


def test_past_capacity_the_queue_grows_linearly_and_the_backlog_is_reported():
    eng = engine()
    cap = capacity(eng, 1000, 100)
    rate = 1.1 * cap
    a = simulate(eng, poisson_arrivals(rate, 2000, isl=1000, osl=100, poisson=False))
    b = simulate(eng, poisson_arrivals(rate, 4000, isl=1000, osl=100, poisson=False))
    # arrivals outpace service by (rate - cap) for the length of the run: the backlog at the last arrival
    for res, n in ((a, 2000), (b, 4000)):
        expect = (rate - cap) * n / rate
        assert res.growing
        assert res.backlog == pytest.approx(expect, rel=0.25)
    assert b.backlog / a.backlog == pytest.approx(2.0, rel=0.2)
    # the finite run drains: everything completes, at the service rate
    assert b.completed == 4000
    assert b.requests_per_s == pytest.approx(cap, rel=0.1)
    assert np.mean(b.ttft) > 2 * np.mean(a.ttft) * 0.8     # TTFT grows with the run past capacity


def test_prefill_first_pauses_decodes_while_prompts_wait():
    # two requests: B arrives while A decodes. Under prefill_first A's decode pauses for B's prefill step;
    # mixed runs B's prompt in the same step as A's decode token
    req = Requests(np.array([0.0, 0.030]), np.array([1000, 1000]), np.array([50, 50]), np.array([0, 0]))
    mixed = simulate(engine("mixed"), req)
    first = simulate(engine("prefill_first"), req)
    assert first.e2e[0] > mixed.e2e[0] - 1e-9
    assert first.completed == mixed.completed == 2


def test_median_itl_is_the_decode_step_while_mean_tpot_carries_the_prefill_pauses():
    # A decodes 100 tokens alone; B's 1000-token prompt arrives mid-run. Under prefill_first A's token after
    # B's prefill waits for that step (22 ms) plus its own decode step; every other gap is one decode step
    # (2.05 ms with A alone, 2.1 ms with both), so the median over all token gaps is a plain decode step
    req = Requests(np.array([0.0, 0.05]), np.array([1000, 1000]), np.array([100, 100]), np.array([0, 0]))
    res = simulate(engine("prefill_first"), req)
    assert res.itl_p50 in (pytest.approx(0.00205), pytest.approx(0.0021))
    assert res.tpot[0] > res.itl_p50 + 0.022 / 99 * 0.9          # the pause is spread over A's mean TPOT
    assert res.itl_mean > res.itl_p50


def test_multi_step_scheduling_makes_a_prompt_wait_for_the_round_to_end():
    # A decodes (2.05 ms steps); B arrives 1 ms into a round. With one step per round B is admitted after the
    # current step; with rounds of 8 decode steps B waits for the round's end: about 7 more steps
    req = Requests(np.array([0.0, 0.023]), np.array([1000, 1000]), np.array([200, 20]), np.array([0, 0]))
    one = simulate(engine("prefill_first"), req)
    multi = simulate(engine("prefill_first", multi_step=8), req)
    assert multi.ttft[1] - one.ttft[1] > 3 * 0.00205
    assert multi.ttft[1] - one.ttft[1] < 9 * 0.00205
    assert multi.completed == one.completed == 2


def test_kv_pressure_preempts_and_still_completes_everything():
    # KV for about 3 sequences of 1000 + 500: a burst of 20 must be served a few at a time, with preemption
    eng = engine(kv_tokens=4000)
    res = simulate(eng, burst_arrivals(20, isl=1000, osl=500))
    assert res.completed == 20
    assert max(p["running"] for p in res.timeline) <= 4


def test_steady_state_agrees_with_the_analytic_model():
    """Llama-3.1-8B on one H100 at about a third of capacity: the simulation and the analytic steady state
    (serving.serve) on the same step-time model."""
    from stockpile.catalog import get_chip, get_model
    from stockpile.perf.inference import Configs, evaluate
    from stockpile.perf.traffic import simulate_estimate

    model, chip = get_model("meta-llama/Llama-3.1-8B-Instruct"), get_chip("h100-sxm-80gb")
    ana = evaluate(model, chip, "vllm", Configs(isl=1000, osl=200, mode=2, rate=4.0, num_requests=3000))
    sim = simulate_estimate(model, chip, "vllm", Configs(isl=1000, osl=200, rate=4.0, num_requests=3000))
    assert float(sim.requests_per_s) == pytest.approx(4.0, rel=0.05)
    assert float(ana["requests_per_s"][()] if np.ndim(ana["requests_per_s"]) == 0 else ana["requests_per_s"][0]) \
        == pytest.approx(4.0, rel=0.02)
    t_ana = float(np.asarray(ana["tpot_s"]).reshape(-1)[0])
    assert float(np.mean(sim.tpot)) == pytest.approx(t_ana, rel=0.1)
    ttft_ana = float(np.asarray(ana["ttft_s"]).reshape(-1)[0])
    assert float(np.mean(sim.ttft)) == pytest.approx(ttft_ana, rel=0.25)


def test_closed_loop_sends_each_next_request_when_one_returns() -> None:
    """Constant 10 ms steps, 4 output tokens: a request takes 1 prefill step + 3 decode steps = 40 ms. One
    client runs six requests back to back (240 ms); two clients, three generations (120 ms); the arrivals of
    the request list are ignored."""
    from stockpile.perf.simulate import EngineSpec, Requests, closed_loop
    eng = EngineSpec(step=lambda pre, dec, ctx: 0.01, kv_tokens=1e6, max_seqs=8, budget=8192)
    req = Requests(arrival=np.linspace(0, 100, 6), isl=np.full(6, 10), osl=np.full(6, 4),
                   cached=np.zeros(6, dtype=np.int64))
    for clients, duration in ((1, 0.24), (2, 0.12), (6, 0.04)):
        sim = closed_loop(eng, clients, req)
        assert sim.completed == 6 and sim.duration == pytest.approx(duration)
        assert np.allclose(sim.e2e, 0.04) and np.allclose(sim.ttft, 0.01)
    # one slot in the engine and two clients: the second waits a whole request for its prefill
    one = EngineSpec(step=lambda pre, dec, ctx: 0.01, kv_tokens=1e6, max_seqs=1, budget=8192)
    sim = closed_loop(one, 2, req)
    assert sim.duration == pytest.approx(0.24) and sim.ttft.max() == pytest.approx(0.05)
    # a latency outside the engine (HTTP, streaming) is part of every client's round: one client, six requests
    # of 40 ms in the engine + 5 ms outside each (the run ends when the last client sees its reply)
    slow = EngineSpec(step=lambda pre, dec, ctx: 0.01, kv_tokens=1e6, max_seqs=8, budget=8192, fixed_s=0.005)
    sim = closed_loop(slow, 1, req)
    assert np.allclose(sim.e2e, 0.045) and sim.requests_per_s == pytest.approx(6 / (6 * 0.045))


def test_a_chip_without_a_nic_figure_says_how_its_network_is_modelled():
    """STYLE: no silent guess. MI355X has no sourced NIC figure; a layout beyond its 8-GPU domain states the
    assumed network (an eighth of the scale-up link), and one inside the domain does not need it."""
    from stockpile.catalog import get_chip, get_model
    from stockpile.perf.inference import estimate
    from stockpile.perf.layout import resolve_layout
    chip, model = get_chip("mi355x-288gb"), get_model("deepseek-ai/DeepSeek-R1")
    assert chip.scaleout_gbps is None
    wide = estimate(model, chip, layout=resolve_layout(gpus=16, tp=16, is_moe=True), isl=1000, osl=200,
                    concurrency=16)
    assert any("no sourced NIC figure" in a and "0.125 of the scale-up link" in a for a in wide.assumptions)
    one = estimate(model, chip, layout=resolve_layout(gpus=8, tp=8, is_moe=True), isl=1000, osl=200,
                   concurrency=16)
    assert not any("NIC" in a for a in one.assumptions)


def test_a_vllm_v1_burst_goes_through_the_simulation_and_others_stay_in_the_steady_state():
    """A burst beyond the KV cache: vLLM's V1 engine serves it by preempting and recomputing, which the steady
    state does not carry, so `estimate` simulates it (and says so); SGLang and TensorRT-LLM reserve the output's
    room at admission and keep the steady state. The burst's prompts all arrive at once."""
    from stockpile.catalog import get_chip, get_model
    from stockpile.perf.inference import estimate
    from stockpile.perf.layout import resolve_layout
    from stockpile.perf.traffic import preempts_in_bursts

    assert preempts_in_bursts("vllm") and preempts_in_bursts("vllm", "0.11.0")
    assert not preempts_in_bursts("vllm", "0.6.3") and not preempts_in_bursts("sglang")
    assert not preempts_in_bursts("trtllm")
    model, chip = get_model("Qwen/Qwen3-32B"), get_chip("h100-sxm-80gb")
    kw = dict(layout=resolve_layout(gpus=1), weight_dtype="bf16", kv_dtype="bf16", isl=1000, osl=500,
              num_requests=400)
    v1 = estimate(model, chip, engine="vllm", **kw)
    sg = estimate(model, chip, engine="sglang", **kw)
    assert any(a.startswith("scheduler simulation: 400 requests") for a in v1.assumptions)
    assert not any(a.startswith("scheduler simulation") for a in sg.assumptions)
    assert v1.ttft_p90_ms is not None and sg.ttft_p90_ms is None
    # every prompt waits for the ones ahead of it: the mean TTFT is a large part of the run
    assert v1.ttft_ms > 0.2 * 400 / v1.requests_per_s * 1e3
    reqs = burst_arrivals(50, isl=1000, osl=500, spread=0.2, prefix_hit=0.5)
    assert np.all(reqs.arrival == 0) and np.all(reqs.cached < reqs.isl) and reqs.cached.sum() > 0


def test_a_closed_loop_clients_lag_lands_on_ttft_and_e2e_not_tpot():
    # each first token waits stream_s per other request in flight; the client sends its next request that much
    # later. An open-loop run has no such lag
    from stockpile.perf.simulate import Requests as R
    n = 40
    req = R(np.zeros(n), np.full(n, 200), np.full(n, 50), np.zeros(n, dtype=int))
    off = simulate(engine(), req, closed=8)
    on = simulate(engine(stream_s=0.002), req, closed=8)
    lag = np.mean(on.ttft) - np.mean(off.ttft)
    assert 0.002 * 1 < lag < 0.002 * 8               # between 1 and all 8 - 1 other streams in flight
    assert np.mean(on.tpot) == pytest.approx(np.mean(off.tpot), rel=0.05)
    assert on.duration > off.duration                   # the loop turns over later
    burst = burst_arrivals(40, isl=200, osl=50)
    assert np.mean(simulate(engine(stream_s=0.002), burst).ttft) == pytest.approx(
        np.mean(simulate(engine(), burst).ttft), rel=1e-12)


def test_an_engine_that_sets_aside_room_for_the_output_admits_fewer_at_once():
    """reserve_out (defaults.yaml kv_reserve_output): TensorRT-LLM's no-eviction policy admits a request only with room
    for its whole output; vLLM admits against what is written and preempts. With room for 10 prompts of 100 tokens
    and 100 output tokens each, no-eviction runs 5 requests at once, so the last of 10 sent together starts later and
    nothing is preempted; on-demand admission starts them all at once."""
    req = burst_arrivals(10, isl=100, osl=101)
    on_demand = simulate(engine(kv_tokens=1000.0), req)
    reserved = simulate(engine(kv_tokens=1000.0, reserve_out=1.0), req)
    assert on_demand.completed == reserved.completed == 10
    assert max(x["running"] for x in reserved.timeline) <= 5
    assert max(x["running"] for x in on_demand.timeline) > 5
    assert np.max(reserved.ttft) > 2 * np.max(on_demand.ttft)
