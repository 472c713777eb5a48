"""Validation on the shipped measured training rows (the acceptance bounds of issue #5)."""
import statistics

import pytest

from stockpile.calibration.training import predict_training_rows


def test_median_error_and_coverage_on_the_shipped_rows(shipped_rows, shipped_predictions):
    recs = shipped_predictions
    ok = [r for r in recs if r["status"] == "ok"]
    assert len(recs) == len(shipped_rows)
    assert len(ok) >= 0.9 * len(recs)
    assert statistics.median(abs(r["error"]) for r in ok) <= 0.15
    for r in recs:
        assert r["status"] in ("ok", "unsupported", "invalid")
        assert (r["predicted"] is None) == (r["status"] != "ok")
        if r["status"] != "ok":
            assert r["reason"]


@pytest.mark.parametrize("model,published", [
    ("meta-llama/Llama-3.1-8B", 1.46e6), ("meta-llama/Llama-3.1-70B", 7.0e6),
    ("meta-llama/Llama-3.1-405B", 30.84e6), ("deepseek-ai/DeepSeek-V3", 2.664e6),
])
def test_published_gpu_hours_within_20_percent(model, published, shipped_rows):
    rows = [r for r in shipped_rows if r["model"] == model and r["metric"] == "gpu_hours"
            and float(r["value"]) == published]
    assert rows
    rec = predict_training_rows(rows)[0]
    assert rec["status"] == "ok"
    assert abs(rec["error"]) <= 0.20, rec


def test_blank_cells_are_filled_and_said(shipped_rows):
    rows = [r for r in shipped_rows if r["model"] == "meta-llama/Llama-3.1-405B" and r["metric"] == "gpu_hours"]
    rec = predict_training_rows(rows)[0]
    text = " ".join(rec["assumed"])
    assert "16,384 H100" in text and "layout search filled" in text


def test_bad_rows_are_invalid_or_unsupported_not_exceptions(shipped_rows):
    base = dict(shipped_rows[0])
    bad = [dict(base, metric="speed"), dict(base, value="-3"), dict(base, accelerator="h999-1gb"),
           dict(base, metric="gpu_hours", tokens_b=""), dict(base, tp="3")]
    recs = predict_training_rows(bad)
    assert [r["status"] for r in recs[:2]] == ["invalid", "invalid"]
    assert all(r["status"] != "ok" and r["reason"] for r in recs[:4])
    assert recs[4]["status"] in ("unsupported", "invalid")


def test_an_moe_rate_without_device_count_or_layout_is_refused_and_says_what_is_missing(shipped_rows):
    """MindFormers' Qwen2-57B-A14B and DeepSeek-V2 fine-tunes give tokens/s per NPU with neither the NPU count nor the
    parallel layout: an expert-parallel rate moves several-fold with both, so the row is the data's fault. The same
    row with a count is predicted, and a dense row without one still is."""
    moe = [r for r in shipped_rows if r["model"] == "Qwen/Qwen2-57B-A14B" and not r["num_accelerators"]]
    assert moe
    rec = predict_training_rows(moe[:1])[0]
    assert rec["status"] == "unsupported" and "num_accelerators" in rec["reason"] and "expert" in rec["reason"]
    stated = predict_training_rows([dict(moe[0], num_accelerators="64")])[0]
    assert stated["status"] == "ok"
    dense = [r for r in shipped_rows if not r["num_accelerators"] and not r["experts"] and "mindformers" in
             r["source_url"] and r["metric"] == "tokens_per_s_per_gpu" and "57B" not in r["model"]
             and "DeepSeek" not in r["model"]]
    assert dense and predict_training_rows(dense[:1])[0]["status"] == "ok"


def test_nemo_rows_read_as_nemo_with_full_attention_and_plain_ffns():
    """NeMo 24.07's table (training_unseen.csv) counts full attention in its TFLOP/s, and Nemotron's squared-ReLU
    FFN has two matrices, not three: read otherwise, its Llama rows would land in Meta's source (the notes name
    Llama) and Nemotron would carry half as many FFN weights again."""
    import csv
    from importlib import resources

    from stockpile.calibration.training import make_case, source_of
    path = resources.files("stockpile") / "data" / "measurements" / "training_unseen.csv"
    rows = [r for r in csv.DictReader(path.read_text().splitlines()) if r["id"].startswith("nemo2407-")]
    assert len(rows) == 24
    assert {source_of(r)[:3] for r in rows} == {("nemo", "nemo", False)}
    big = next(r for r in rows if r["model"] == "nvidia/nemotron-4-340b")
    model = make_case(big).job.model
    assert not model.gated_mlp
    assert model.params == pytest.approx(341e9, rel=0.01)      # Nemotron-4 340B's parameter count
    recs = predict_training_rows(rows)
    assert all(r["status"] == "ok" for r in recs)


def test_step_time_is_the_global_batch_over_the_predicted_rate(shipped_rows):
    """step_time_s (extending the contract's training metrics) predicts the batch over tokens/s of the same run;
    without global_batch_tokens the row is invalid, naming the column."""
    row = next(r for r in shipped_rows if r["metric"] == "tokens_per_s_per_gpu" and r["global_batch_tokens"]
               and r["num_accelerators"])
    rate = predict_training_rows([row])[0]
    step = predict_training_rows([dict(row, metric="step_time_s", value="10")])[0]
    expected = float(row["global_batch_tokens"]) / (rate["predicted"] * float(row["num_accelerators"]))
    assert rate["status"] == step["status"] == "ok"
    assert step["predicted"] == pytest.approx(expected, rel=1e-6)
    assert step["predicted_p10"] < step["predicted"] < step["predicted_p90"]
    bad = predict_training_rows([dict(row, metric="step_time_s", value="10", global_batch_tokens="")])[0]
    assert bad["status"] == "invalid" and "global_batch_tokens" in bad["reason"]
