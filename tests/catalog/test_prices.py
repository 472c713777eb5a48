"""Chip cost model (issue 16): hand-computed cost per token and TCO, prices with sources, overrides, errors."""
import json

import pytest
from typer.testing import CliRunner

from stockpile.catalog import get_chip
from stockpile.catalog.prices import (
    AVERAGE_POWER_FRACTION,
    HOST_OVERHEAD,
    PUE,
    USD_PER_KWH,
    chip_price,
    extra_prices,
    gpu_hour_cost,
    load_price_file,
    usd_per_million,
)
from stockpile.cli import app
from stockpile.errors import InputError

runner = CliRunner()


def test_cost_per_million_tokens_by_hand():
    # 8 GPUs at 2 USD/h = 16 USD/h; 4,000 tokens/s = 14.4M tokens/h -> 16 / 14.4 = 1.111 USD per million
    assert usd_per_million(2.0, 8, 4000.0) == pytest.approx(16 / 14.4)
    assert usd_per_million(2.0, 8, 0.0) is None


def test_tco_arithmetic_by_hand():
    h20 = get_chip("h20-96gb")
    c = gpu_hour_cost(h20, "tco")
    capex = 12500 / (5 * 8760)                                          # 0.2854 USD/h
    power = h20.tdp_w.value / 1000 * HOST_OVERHEAD * AVERAGE_POWER_FRACTION * PUE * USD_PER_KWH
    assert c is not None and c.basis == "tco"
    assert c.usd_per_gpu_hour == pytest.approx(capex + power)
    assert capex == pytest.approx(0.28539, rel=1e-4)


def test_rental_first_under_auto_and_every_price_has_a_source_and_date():
    h100 = get_chip("h100-sxm-80gb")
    assert gpu_hour_cost(h100).basis == "rental" and gpu_hour_cost(h100).usd_per_gpu_hour == 2.35
    assert gpu_hour_cost(h100, "tco").basis == "tco"
    for cid in ("h100-sxm-80gb", "h800-sxm-80gb", "h20-96gb", "ascend-910b-64gb"):
        p = chip_price(cid)
        for price in (p.purchase_usd, p.rental_usd_per_hour):
            if price is not None:
                assert price.source.startswith("http") and len(price.date) >= 4


def test_a_chip_without_a_price_says_so():
    r = CliRunner().invoke(app, ["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--chip", "a40-48gb",
                                 "--isl", "1000", "--osl", "100", "--concurrency", "8", "--json"])
    assert r.exit_code == 0, r.output
    cost = json.loads(r.stdout)["cost"]
    assert "missing" in cost and "a40-48gb" in cost["missing"] and "usd_per_million_output_tokens" not in cost


def test_price_file_overrides_and_bad_prices(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("a40-48gb:\n  rental_usd_per_hour: {value: 1.0, date: '2026-11', source: 'https://example.com/q'}\n")
    with extra_prices(load_price_file(f)):
        c = gpu_hour_cost(get_chip("a40-48gb"))
        assert c is not None and c.usd_per_gpu_hour == 1.0
    assert gpu_hour_cost(get_chip("a40-48gb")) is None           # only inside the block
    r = CliRunner().invoke(app, ["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--chip", "a40-48gb",
                                 "--isl", "1000", "--osl", "100", "--concurrency", "8", "--prices", str(f), "--json"])
    d = json.loads(r.stdout)
    assert d["cost"]["usd_per_gpu_hour"] == 1.0
    assert d["cost"]["usd_per_million_output_tokens"] == pytest.approx(
        1e6 / (d["output_tokens_per_s"] * 3600), rel=1e-3)
    f.write_text("a40-48gb:\n  rental_usd_per_hour: {value: -1, date: '2026', source: 'x'}\n")
    with pytest.raises(InputError, match="value"):
        load_price_file(f)


def test_the_readme_chip_comparison_has_a_cost_for_all_three():
    r = CliRunner().invoke(app, ["search", "--model", "Qwen/Qwen3-32B", "--chips",
                                 "h800-sxm-80gb,h20-96gb,ascend-910b-64gb", "--gpus", "8", "--isl", "4000", "--osl",
                                 "500", "--ttft-ms", "1000", "--tpot-ms", "50", "--engine", "sglang"])
    assert r.exit_code == 0, r.output
    assert "no price source" not in r.output and r.output.count("cost: ") == 3


def test_break_even_against_an_api_by_hand(tmp_path):
    from stockpile.catalog.prices import ApiPrice, break_even
    api = ApiPrice(usd_per_million_input=0.5, usd_per_million_output=2.0, date="2025", source="https://x")
    # 10 USD/h of GPUs; at full capacity 4,000 in + 1,000 out tokens/s the API would cost
    # (4000 x 0.5 + 1000 x 2.0) x 3600 / 1e6 = 14.4 USD/h -> self-hosting wins above 10 / 14.4 = 69.4 % load
    be = break_even(10.0, 4000.0, 1000.0, api)
    assert be["utilisation"] == pytest.approx(10 / 14.4, abs=1e-4)
    assert be["output_tokens_per_day"] == pytest.approx(10 / 14.4 * 1000 * 86400, rel=1e-4)
    f = tmp_path / "apis.yaml"
    f.write_text("meta-llama/Llama-3.1-8B-Instruct: {usd_per_million_input: -1, usd_per_million_output: 1, "
                 "date: '2026', source: 'https://x'}\n")
    r = CliRunner().invoke(app, ["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--chip",
                                 "h100-sxm-80gb", "--isl", "100", "--osl", "100", "--api-prices", str(f)])
    assert r.exit_code == 2 and "usd_per_million_input" in r.output


def test_api_price_file_resolves_models_and_refuses_unknown_ones(tmp_path) -> None:
    import pytest

    from stockpile.catalog.prices import load_api_price_file
    from stockpile.errors import InputError
    rec = "  usd_per_million_input: 0.1\n  usd_per_million_output: 0.4\n  date: 2026-01\n  source: https://example.org/p\n"
    ok = tmp_path / "ok.yaml"
    ok.write_text("qwen/qwen3-8b-instruct:\n" + rec)
    got = load_api_price_file(ok)
    assert got["qwen/qwen3-8b"].usd_per_million_output == 0.4      # the catalog id a lookup uses
    bad = tmp_path / "bad.yaml"
    bad.write_text("Qwen/Qwen3-8X:\n" + rec)
    with pytest.raises(InputError, match="bad.yaml: model: unknown model 'qwen/qwen3-8x'; did you mean Qwen/Qwen3-8B"):
        load_api_price_file(bad)


def test_token_split_by_hand_and_the_contract_fields():
    from stockpile.catalog.prices import token_split
    # 16 USD/h, a quarter of the device time on prompts: 4 USD/h over 36M input tokens/h, 12 over 3.6M output
    i, o = token_split(16.0, 0.25, 10_000.0, 1_000.0)
    assert i == pytest.approx(4 / 36) and o == pytest.approx(12 / 3.6)
    assert token_split(16.0, 0.25, 0.0, 1_000.0)[0] is None
    # estimate --json: the split spends the whole GPU-hour bill, and the price says where it came from
    res = runner.invoke(app, ["estimate", "--model", "meta-llama/Llama-3.1-70B-Instruct", "--chip", "h100-sxm-80gb",
                              "--tp", "4", "--isl", "1000", "--osl", "200", "--concurrency", "16", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["price"]["basis"] in ("rental", "tco") and d["price"]["sources"]
    spent = (d["usd_per_mtok_input"] * d["total_tokens_per_s"] - d["usd_per_mtok_input"] * d["output_tokens_per_s"]
             + d["usd_per_mtok_output"] * d["output_tokens_per_s"]) * 3600 / 1e6
    assert spent == pytest.approx(4 * d["price"]["usd_per_gpu_hour"], rel=1e-3)
    assert 0 < d["usd_per_mtok_input"] < d["usd_per_mtok_output"] < d["cost"]["usd_per_million_output_tokens"]
    # search --json: every candidate carries the same fields; a disaggregated one prices its prefill pool as input
    res = runner.invoke(app, ["search", "--model", "meta-llama/Llama-3.1-70B-Instruct", "--chip", "h100-sxm-80gb",
                              "--gpus", "8", "--isl", "1000", "--osl", "200", "--tpot-ms", "30", "--json"])
    assert res.exit_code == 0, res.output
    for c in json.loads(res.output)["candidates"]:
        assert c["usd_per_mtok_input"] > 0 and c["usd_per_mtok_output"] > 0 and c["price"]["sources"]
        usd_h = (c["usd_per_mtok_input"] * c["requests_per_s"] * 1000 + c["usd_per_mtok_output"]
                 * c["output_tokens_per_s"]) * 3600 / 1e6
        assert usd_h == pytest.approx(8 * c["price"]["usd_per_gpu_hour"], rel=2e-2)
    # no price source: no numbers, and the reason stays in `cost`
    res = runner.invoke(app, ["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--chip", "a40-48gb",
                              "--isl", "1000", "--osl", "200", "--concurrency", "4", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert "missing" in d["cost"] and d["usd_per_mtok_input"] is None and d["price"] is None


def test_a_load_that_serves_no_tokens_has_no_cost_per_token():
    """Fuzzing found --request-rate 2.2e-308: the simulated arrivals overflowed and the renderer met a cost of None.
    Such a rate is refused with the field and the floor; a throughput of zero states the GPU-hour's price and why
    a token has none."""
    from stockpile.perf.inference import token_cost
    r = CliRunner().invoke(app, ["estimate", "--model", "meta-llama/Llama-3.1-8B-Instruct", "--chip", "h100-sxm-80gb",
                                 "--isl", "1", "--osl", "1", "--request-rate", "2.2250738585072014e-308"])
    assert r.exit_code == 2 and "request_rate" in r.output
    cost = token_cost(get_chip("h100-sxm-80gb"), 1, 0.0, 0.0)
    assert "no output tokens" in cost["missing"] and cost["usd_per_gpu_hour"] > 0
    assert "usd_per_million_output_tokens" not in cost
