"""Bad input from a careless or hostile user (issue 14): each case gets a one-line error naming the field and
exit code 2 — never a traceback — and the work of one command stays bounded."""
import json

import pytest
from typer.testing import CliRunner

from stockpile.cli import app

runner = CliRunner()
M = ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
Q = ["--isl", "100", "--osl", "100"]


def run(*args: str):
    return runner.invoke(app, list(args))


@pytest.mark.parametrize("args,field", [
    (["search", *M, "--chips", ",,,", "--gpus", "8", *Q], "chip"),
    (["search", *M, "--chip", "h100-sxm-80gb", "--weight-dtype", "fp8,banana", "--gpus", "8", *Q], "weight_dtype"),
    (["search", *M, "--chip", "h100-sxm-80gb", "--kv-dtype", "fp9", "--gpus", "8", *Q], "kv_dtype"),
    (["search", *M, "--chip", "h100-sxm-80gb", "--gpus", "1000000000", *Q], "gpus"),
    (["size", "--target-loss", "nan"], "target_loss"),
    (["export", "--target", "vllm", *M, "--chip", "h100-sxm-80gb", "--gpus", "8", *Q, "--rank", "-1"], "rank"),
    (["estimate", *M, "--chip", "h100-sxm-80gb", *Q, "--request-rate", "0"], "request_rate"),
    (["estimate", *M, "--chip", "h100-sxm-80gb", *Q, "--concurrency", "-3"], "concurrency"),
    (["estimate", *M, "--chip", "h100-sxm-80gb", *Q, "--prefix-hit", "1.5"], "prefix_hit"),
    (["estimate", *M, "--chip", "h100-sxm-80gb", *Q, "--concurrency", "8", "--length-spread", "-1"], "length_spread"),
    (["estimate", *M, "--chip", "h100-sxm-80gb", *Q, "--concurrency", "8", "--length-spread", "nan"], "length_spread"),
    (["estimate", *M, "--chip", "h100-sxm-80gb", *Q, "--num-requests", "0", "--request-rate", "2"], "num_requests"),
])
def test_bad_cli_input_is_one_line_naming_the_field(args, field):
    r = run(*args)
    assert r.exit_code == 2, r.output
    assert field in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) <= 3


def test_plan_refuses_a_folder_and_a_binary_file(tmp_path):
    r = run("plan", str(tmp_path))
    assert r.exit_code == 2 and "folder" in r.output and "Traceback" not in r.output
    b = tmp_path / "x.yaml"
    b.write_bytes(bytes(range(256)) * 4)
    r = run("plan", str(b))
    assert r.exit_code == 2 and "UTF-8" in r.output and "Traceback" not in r.output


def test_search_work_is_bounded_at_32768_gpus():
    """The layouts searched do not grow with every divisor and every prefill/decode split of a huge count."""
    r = run("search", *M, "--chip", "h100-sxm-80gb", "--gpus", "32768", *Q, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["evaluated"] < 300_000
    assert d["best"] is not None


L70 = ["--model", "meta-llama/Llama-3.1-70B-Instruct", "--gpus", "8", "--isl", "1000", "--osl", "100"]


@pytest.mark.parametrize("args,field,says", [
    (["--chip", "h100-sxm-80gb", "--concurrency", "nan"], "concurrency", "finite"),
    (["--chip", "h100-sxm-80gb", "--request-rate", "inf"], "request_rate", "finite"),
    (["--chip", "h100-sxm-80gb", "--concurrency", "4", "--spec-draft", "4", "--spec-accept", "10"], "spec_accept",
     "at most"),
    (["--chip", "h100-sxm-80gb", "--concurrency", "4", "--spec-accept", "2"], "spec_accept", "draft"),
    (["--chip", "h100-sxm-80gb", "--concurrency", "4", "--pp", "81", "--tp", "1"], "pp", "80 layers"),
    (["--chip", "h100-sxm-80gb", "--concurrency", "1", "--isl", "200000"], "isl", "context"),
    (["--chip", "ascend-910b-64gb", "--concurrency", "4", "--engine", "trtllm"], "engine", "Huawei"),
])
def test_absurd_estimates_are_refused(args, field, says):
    r = run("estimate", *L70, *args)
    assert r.exit_code == 2, r.output
    assert field in r.output and says in r.output and "Traceback" not in r.output


def test_long_context_override_is_modelled_and_said():
    r = run("estimate", *L70, "--chip", "h200-sxm-141gb", "--concurrency", "1", "--isl", "150000",
            "--allow-long-context", "--json")
    assert r.exit_code == 0, r.output
    assert any("beyond the model's context" in a for a in json.loads(r.stdout)["assumptions"])


@pytest.mark.parametrize("args,field", [
    (["search", *M, "--chip", "h100-sxm-80gb", "--gpus", "8", *Q, "--tpot-ms", "nan"], "tpot_ms"),
    (["size", "--compute", "1e24", "--target-loss", "2.0"], "target_loss"),
    (["train", *M, "--chip", "v100-sxm-32gb", "--gpus", "64", "--tokens", "1T", "--precision", "bf16"], "precision"),
])
def test_other_absurd_inputs(args, field):
    r = run(*args)
    assert r.exit_code == 2 and field in r.output and "Traceback" not in r.output, r.output


@pytest.mark.parametrize("patch,says", [({"num_hidden_layers": -4}, "num_hidden_layers"),
                                        ({"num_attention_heads": 0}, "num_attention_heads"),
                                        ({"num_key_value_heads": 40}, "1..num_attention_heads")])
def test_insane_config_json_is_refused(tmp_path, patch, says):
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
           "num_attention_heads": 32, "num_hidden_layers": 32, "intermediate_size": 14336, "vocab_size": 128256,
           "num_key_value_heads": 8, **patch}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    r = run("estimate", "--model", str(tmp_path / "config.json"), "--chip", "h100-sxm-80gb", *Q)
    assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output, r.output


def test_a_configuration_that_does_not_fit_exits_non_zero_in_json_too_without_latencies():
    args = ["estimate", "--model", "meta-llama/Llama-3.1-70B-Instruct", "--chip", "l40s-48gb", "--tp", "1", *Q,
            "--concurrency", "1"]
    text, js = run(*args), run(*args, "--json")
    assert text.exit_code == 1 and js.exit_code == 1
    d = json.loads(js.stdout)
    assert d["fits"] is False and d["ttft_ms"] is None and d["tpot_ms"] is None and "does not fit" in d["limits"]
    assert "does not fit" in text.output and "TTFT" not in text.output


def test_export_refuses_a_candidate_that_misses_the_targets_unless_best_effort():
    args = ["export", "--target", "vllm", "--model", "meta-llama/Llama-3.1-70B-Instruct", "--chip", "h100-sxm-80gb",
            "--gpus", "4", *Q, "--tpot-ms", "1"]
    r = run(*args)
    assert r.exit_code == 2 and "TPOT" in r.output and "--best-effort" in r.output
    r = run(*args, "--best-effort")
    assert r.exit_code == 0 and "vllm serve" in r.stdout


def test_calibration_profiles_live_in_the_user_data_dir_and_are_selected_by_name(tmp_path, monkeypatch):
    from pathlib import Path

    import yaml

    import stockpile
    monkeypatch.setenv("STOCKPILE_HOME", str(tmp_path))
    shipped = Path(stockpile.__file__).parent / "data" / "calibration" / "inference.yaml"
    doc = yaml.safe_load(shipped.read_text())
    doc["engines"]["vllm"]["ttft_s"] = 0.5                      # a profile with a much slower front end
    (tmp_path / "calibrations").mkdir()
    (tmp_path / "calibrations" / "slow.yaml").write_text(yaml.safe_dump(doc))
    args = ["estimate", *M, "--chip", "h100-sxm-80gb", *Q, "--concurrency", "1", "--json"]
    base = json.loads(run(*args).stdout)["ttft_ms"]
    slow = json.loads(run(*args, "--calibration", "slow").stdout)["ttft_ms"]
    assert slow == pytest.approx(base + 1e3 * (0.5 - shipped_ttft(doc, shipped)), rel=0.02)
    r = run(*args, "--calibration", "nope")
    assert r.exit_code == 2 and "no profile 'nope'" in r.output and "slow" in r.output
    # calibrate refuses an output it cannot write before fitting; its default is the profile folder
    r = run("calibrate", "--out", str(tmp_path))
    assert r.exit_code == 2 and "folder" in r.output
    from stockpile.profiles import profile_path
    assert profile_path("default") == tmp_path / "calibrations" / "default.yaml"
    assert profile_path("default", training=True).name == "default.training.yaml"


def test_a_training_fit_given_as_calibration_file_drives_training_rows(tmp_path):
    """`--calibration FILE` with a training fit (stockpile/data/calibration/training.yaml's format) selects it for
    training: it has a "global" section like an inference fit, and was once read as an inference fit with every
    engine at its default, leaving training on the shipped fit without a word."""
    from pathlib import Path

    import yaml

    import stockpile
    data = Path(stockpile.__file__).parent / "data"
    doc = yaml.safe_load((data / "calibration" / "training.yaml").read_text())
    for fam in doc["families"].values():
        fam["gemm_eff"] = fam["gemm_eff"] / 2                  # every chip family's GEMMs half as fast
    slow = tmp_path / "slow.training.yaml"
    slow.write_text(yaml.safe_dump(doc))
    csv = str(data / "measurements" / "training_unseen.csv")
    base = json.loads(run("validate", csv, "--json").stdout)["rows"]
    half = json.loads(run("validate", csv, "--json", "--calibration", str(slow)).stdout)["rows"]
    ratios = sorted(h["predicted"] / b["predicted"] for b, h in zip(base, half) if b["status"] == "ok")
    assert len(ratios) >= 30 and ratios[-1] < 1.0 and ratios[len(ratios) // 2] < 0.75
    from stockpile.errors import InputError
    from stockpile.perf.calibration import read_calibration
    with pytest.raises(InputError, match="not an inference calibration"):
        read_calibration(slow)


def shipped_ttft(doc, shipped):
    import yaml
    return yaml.safe_load(shipped.read_text())["engines"]["vllm"]["ttft_s"]


def test_an_interrupted_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    """A crash between writing and renaming (what kill -9 mid-write amounts to) keeps the old file, and the mode
    of a new file follows the umask, not mkstemp's 0600."""
    import os

    from stockpile import atomic
    dest = tmp_path / "plan.html"
    atomic.write_text_atomic(dest, "old report")
    assert (dest.stat().st_mode & 0o777) == (0o666 & ~_umask())

    def crash(*_a, **_k):
        raise KeyboardInterrupt("killed")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_text_atomic(dest, "new report, half written")
    assert dest.read_text() == "old report"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.html"]       # no temp file left behind


def _umask() -> int:
    import os
    m = os.umask(0)
    os.umask(m)
    return m


def test_plan_refuses_an_alias_bomb_and_deep_nesting_quickly(tmp_path):
    bomb = ["start: 2025-01", 'a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdef", "bcdefg"):
        bomb.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    bomb.append("inference: *g")
    f = tmp_path / "bomb.yaml"
    f.write_text("\n".join(bomb) + "\n")
    r = run("plan", str(f))
    assert r.exit_code == 2 and "alias" in r.output and "Traceback" not in r.output
    d = tmp_path / "deep.yaml"
    d.write_text("a: " + "[" * 3000 + "]" * 3000 + "\n")
    r = run("plan", str(d))
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_mi308x_is_estimated_and_says_which_figures_are_estimates():
    r = run("estimate", "--model", "Qwen/Qwen3-32B", "--chip", "mi308x-192gb", "--tp", "2", "--isl", "2000",
            "--osl", "500", "--concurrency", "32", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    flagged = [a for a in d["assumptions"] if "mi308x-192gb" in a and "not a published figure" in a]
    assert any("bf16_tflops" in a and "UPPER BOUND" in a for a in flagged)
    assert any("memory_bw_gbs" in a for a in flagged)
    # the compute bound is the Oct-2023 rule's: TPP = 598 x 8 < 4,800
    from stockpile.catalog import get_chip
    assert get_chip("mi308x-192gb").tpp < 4800


def test_kunlun_p800_is_estimated_from_press_and_benchmark_derived_figures():
    r = run("estimate", "--model", "Qwen/Qwen3-8B", "--chip", "kunlun-p800-96gb", "--isl", "2048", "--osl", "2048",
            "--concurrency", "16", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    flagged = " ".join(a for a in d["assumptions"] if "kunlun-p800-96gb" in a and "not a published figure" in a)
    # the bandwidth is a lower bound derived from Baidu's own benchmark, the compute a press figure
    assert "memory_bw_gbs" in flagged and "DERIVED LOWER BOUND" in flagged
    assert "fp16_tflops" in flagged and "PRESS" in flagged
    assert "PLACEHOLDER" in flagged.upper()          # the XPU Link bandwidth is unpublished
