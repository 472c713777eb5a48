"""training_added.csv: our own sourced training rows, fitted beside the shared file (the first on AMD GPUs)."""
from __future__ import annotations

import pytest

from stockpile.calibration.bands import training_family_seen
from stockpile.calibration.fit_training import FITTED_FILES, default_files, default_rows, read_training_rows
from stockpile.calibration.training import source_of
from stockpile.perf.training import load_training_calibration


def test_the_fit_reads_the_shared_file_and_our_additions() -> None:
    paths = default_files()
    assert [p.name for p in paths] == list(FITTED_FILES) and all(p.is_file() for p in paths)
    added = read_training_rows(paths[1])
    assert len(default_rows()) == len(read_training_rows(paths[0])) + len(added)
    # every added row names its source, and the AMD FSDP rows are their own source and framework (not Meta's,
    # which the word "llama" in the notes would otherwise pick)
    assert all(r["source_url"] for r in added)
    fsdp = [r for r in added if "rocm/pytorch-training" in r["source_url"]]
    assert len(fsdp) == 8 and {source_of(r)[:2] for r in fsdp} == {("rocm-fsdp", "pytorch-fsdp")}
    # AMD's Primus runs Megatron-LM: Megatron's behaviour, its own source (held out apart from AMD's FSDP rows)
    primus = [r for r in added if "AMD-AGI/Primus" in r["source_url"] + r["notes"]]
    assert primus and {source_of(r)[:2] for r in primus} == {("primus", "megatron")}


def test_amd_training_takes_its_fitted_gemm_efficiency() -> None:
    cal = load_training_calibration()
    amd = cal.families["amd"]["gemm_eff"]
    assert 0.3 < amd < cal.families["hopper"]["gemm_eff"]
    assert cal.meta["sources"]["rocm-fsdp"] == 8 and cal.meta["sources"]["primus"] >= 5
    assert cal.params("cdna3", "pytorch-fsdp").gemm_eff == pytest.approx(amd)


def test_a_chip_architecture_without_rows_is_not_seen_though_its_group_is_fitted() -> None:
    assert training_family_seen("cdna3") and training_family_seen("cdna4") and training_family_seen("hopper")
    assert not training_family_seen("cdna2") and not training_family_seen("volta")


def test_a_pytorch_moe_run_with_deepep_waits_on_the_host_each_moe_layer() -> None:
    """DeepEP's normal dispatch returns its received-token counts to the host: a torchtitan MoE row whose notes
    name DeepEP pays the per-MoE-layer host stall (moe_sync) that Megatron's dropless dispatcher pays; the same
    row without it does not, and is predicted faster."""
    from stockpile.calibration.fit_training import predict_training_rows
    row = {"id": "t", "model": "Qwen/Qwen3-30B-A3B", "seq_len": "4096", "accelerator": "b200-sxm-180gb",
           "num_accelerators": "8", "precision": "bf16", "tp": "1", "dp": "8", "ep": "8", "cp": "1",
           "global_batch_tokens": "262144", "recompute": "full", "metric": "tokens_per_s_per_gpu", "value": "14796",
           "source_url": "https://github.com/pytorch/torchtitan/blob/x/README.md",
           "notes": "torchtitan MoE, DeepEP dispatch and combine, local bs 8"}
    with_deepep, without = predict_training_rows([row, {**row, "notes": "torchtitan MoE, all-to-all, local bs 8"}])
    assert any("DeepEP dispatch" in a for a in with_deepep["assumed"])
    assert not any("DeepEP" in a for a in without.get("assumed", []))
    assert with_deepep["predicted"] < 0.95 * without["predicted"]


def test_a_megatron_moe_dispatch_padded_to_capacity_does_not_wait_on_the_host() -> None:
    """A Megatron MoE run that drops tokens at a capacity factor is costed with a dense dispatch (padded to capacity):
    static shapes, so Megatron's dispatcher copies no token counts to the host (drop_and_pad keeps cuda_sync_point
    "no_sync"), and the run pays no dropless host stall; the same run dropless does, and is predicted slower."""
    from stockpile.calibration.fit_training import predict_training_rows
    row = {"id": "m", "model": "mistralai/Mixtral-8x22B-v0.1", "seq_len": "4096", "accelerator": "h100-sxm-80gb",
           "num_accelerators": "128", "precision": "bf16", "tp": "2", "pp": "8", "dp": "8", "ep": "4", "cp": "1",
           "global_batch_tokens": str(1024 * 4096), "metric": "mfu", "value": "0.49",
           "source_url": "https://arxiv.org/abs/2504.14960",
           "notes": "Megatron-Core, token dropping at capacity factor 1"}
    dropped, dropless = predict_training_rows([row, {**row, "notes": "Megatron-Core, dropless"}])
    assert any("capacity factor 1" in a for a in dropped["assumed"])
    assert dropped["predicted"] > 1.1 * dropless["predicted"]


def test_a_model_or_chip_named_in_the_notes_does_not_pick_another_labs_framework() -> None:
    """A source is known by its URL; the notes count only where they name a code repository (owner/name). A new
    publication whose notes mention Llama, DeepSeek, InternLM or Gaudi is not Meta's, DeepSeek's, InternEvo's or
    Intel's run (before, the word alone handed it that lab's fitted kernel factor: Meta's is 1.2)."""
    row = {"source_url": "https://example.org/some-lab/benchmarks.md",
           "notes": "Llama-3 8B recipe, DeepSeek-style MoE layout, compared with InternLM and Gaudi figures"}
    assert source_of(row) == ("other", "megatron", True, False)
    assert source_of({**row, "source_url": "https://github.com/meta-llama/llama-models/blob/x/MODEL_CARD.md"})[0] \
        == "meta"
    # a repository named in the notes still identifies the run's code (AMD's Primus, described in a ROCm blog)
    assert source_of({**row, "notes": "ran with AMD-AGI/Primus"})[:2] == ("primus", "megatron")
    assert source_of({**row, "source_url": "https://github.com/Ascend/MindSpeed-LLM/blob/c0ffee/README.md"})[:2] \
        == ("mindspeed", "megatron")
    # a framework named in the notes still says what the run ran on (a torchtitan or MaxText run written up on a blog)
    assert source_of({**row, "notes": "Llama 3 8B with torchtitan, FSDP2"})[:2] == ("torchtitan", "torchtitan")
    assert source_of({**row, "notes": "DeepSeek-V3 on MaxText, v5p-256"})[:2] == ("maxtext", "maxtext")
    # MindSpeed's notes may name Megatron-LM, whose port it is: still MindSpeed's own source
    assert source_of({**row, "source_url": "https://github.com/Ascend/MindSpeed-LLM/blob/c0ffee/README.md",
                      "notes": "built on Megatron-LM core_r0.6.0"})[0] == "mindspeed"


def test_megatron_flag_names_in_the_notes_fix_the_micro_batch_and_virtual_stages() -> None:
    """Megatron's own flag names (`--micro-batch-size 2`, `--num-layers-per-virtual-pipeline-stage 4`) pin the
    layout the way NeMo's MBS= and VP= do, instead of leaving them to the search."""
    from stockpile.calibration.training import make_case
    row = {"id": "x", "model": "meta-llama/Llama-2-7b-hf", "accelerator": "ascend-910b-64gb",
           "num_accelerators": "8", "precision": "bf16", "tp": "1", "pp": "2", "cp": "1", "seq_len": "4096",
           "global_batch_tokens": str(256 * 4096), "recompute": "none", "metric": "tokens_per_s_per_gpu",
           "value": "4733", "source_url": "https://github.com/Ascend/MindSpeed-LLM/blob/c0ffee/README.md",
           "notes": "script flags: --micro-batch-size=2 --num-layers-per-virtual-pipeline-stage 4"}
    case = make_case(row)
    assert case.fixed["mb"] == 2 and case.fixed["vpp"] == 32 // (2 * 4)
    assert case.job.framework == "megatron"


def test_megatron_on_ascend_is_fitted_with_the_npu_runtimes_own_per_layer_time() -> None:
    """MindSpeed-LLM's table (Megatron on 910B) is fitted: its runs come within 20 % at the median (62 % fast with the
    fit before them), and Ascend keeps its own per-layer host time, slower than the CUDA chips' shared one."""
    from stockpile.calibration.training import predict_training_rows
    cal = load_training_calibration()
    assert cal.meta["sources"]["mindspeed"] >= 60
    assert cal.families["ascend"]["layer_s"] > 2 * cal.global_["layer_s"]
    assert cal.params("ascend", "megatron").layer_s == pytest.approx(cal.families["ascend"]["layer_s"])
    assert cal.params("hopper", "megatron").layer_s == pytest.approx(cal.global_["layer_s"])
    ms = [r for r in default_rows() if "MindSpeed-LLM" in r["source_url"]]
    errors = sorted(abs(r["error"]) for r in predict_training_rows(ms, cal) if r["status"] == "ok")
    assert len(errors) == len(ms) and errors[len(errors) // 2] < 0.20
    assert {source_of(r)[:2] for r in ms} == {("mindspeed", "megatron")}


def test_a_source_of_n_rows_weighs_sqrt_n_rows_in_the_fit() -> None:
    from stockpile.calibration.fit_training import source_weights
    w = source_weights(["a", "a", "a", "a", "b"])
    assert w.mean() == pytest.approx(1.0)
    assert w[0] == pytest.approx(w[4] / 2) and w[:4].sum() == pytest.approx(2 * w[4])


def test_calibrating_on_a_file_of_one_source_skips_holding_it_out(tmp_path) -> None:
    """A user's own runs are usually one source: the fit's leave-one-source-out has nothing left to fit on without
    it, so that source is not held out (before, `calibrate --training` refused such a file with five or more rows)."""
    import csv

    from stockpile.calibration.fit_training import leave_one_source_out, main
    rows = [r for r in default_rows() if "MindSpeed-LLM" in r["source_url"]][:6]
    path = tmp_path / "mine.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    assert leave_one_source_out(rows) == {}
    report = main(loso=True, paths=[path], dest=tmp_path / "cal.yaml")
    assert report["leave_one_source_out"] == {} and (tmp_path / "cal.yaml").is_file()


def test_a_catalogued_model_with_fewer_layers_is_its_reduced_variant() -> None:
    """A benchmark script that keeps a model's widths and cuts its stack (MindSpeed-LLM's 16-layer DeepSeek-V2) is
    the catalogued architecture with the layers column's count: MLA and the shared experts stay, the leading dense
    layer stays, and the run is predicted slower per token than a plain GQA guess of the same size would say."""
    from stockpile.calibration.training import row_model
    from stockpile.catalog.models import get_model
    from stockpile.errors import InputError
    full = get_model("deepseek-ai/DeepSeek-V2")
    used: list[str] = []
    cut = row_model({"model": "deepseek-ai/DeepSeek-V2", "layers": "16"}, used)
    assert cut.layers == 16 and cut.is_mla and cut.shared_experts == full.shared_experts
    assert cut.dense_layers == full.dense_layers and cut.moe_layers == 16 - full.dense_layers
    assert cut.params < full.params / 3 and "reduced variant" in used[0]
    assert row_model({"model": "deepseek-ai/DeepSeek-V2", "layers": str(full.layers)}, []).id == full.id
    # interleaved dense and MoE layers (Llama 4 Maverick: every other layer) keep their share
    mav = row_model({"model": "meta-llama/Llama-4-Maverick-17B-128E-Instruct", "layers": "12"}, [])
    assert (mav.dense_layers, mav.moe_layers) == (6, 6)
    with pytest.raises(InputError, match="layers"):
        row_model({"model": "deepseek-ai/DeepSeek-V2", "layers": str(full.layers + 4)}, [])


def test_an_moe_rows_ffn_hidden_is_its_expert_width() -> None:
    """Megatron's convention: with experts and no separate expert width, ffn-hidden-size is each expert's. A label
    (params_b) that disagrees with the columns is said, and the columns win (MindSpeed's 'Grok1 8x5B' script is
    12 layers of 8 experts of 32768: 60.6B, not the README's 40B)."""
    from stockpile.calibration.training import derive_spec
    row = {"model": "grok-like", "params_b": "40", "layers": "12", "hidden": "6144", "heads": "48", "kv_heads": "8",
           "ffn_hidden": "32768", "vocab": "131072", "experts": "8", "experts_per_token": "2"}
    used: list[str] = []
    m = derive_spec(row, used)
    assert m.ffn_expert == 32768 and m.experts == 8
    assert 55e9 < m.params < 65e9
    assert any("disagrees" in u for u in used)
    solved = derive_spec({**row, "ffn_hidden": ""}, [])
    assert solved.ffn_expert < 25000       # without the column the width is solved from params_b
