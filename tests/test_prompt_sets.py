"""Runs of one publication over the same prompts: a row whose notes name only a server flag is read with the
varied lengths of the dataset run it shares its mean input length with (calibration/prompt_sets.py)."""
from __future__ import annotations

from stockpile.calibration.inference import prepare_rows
from stockpile.calibration.prompt_sets import mark_shared_prompts
from stockpile.calibration.rows import InferenceCase, inference_case


def _row(i: str, isl: str, notes: str, url: str = "https://example.org/doc.md") -> dict[str, str]:
    return dict(id=i, model="Qwen/Qwen3-8B", accelerator="h100-sxm-80gb", num_accelerators="1", engine="vllm",
                weight_dtype="bf16", kv_dtype="", tp="1", pp="1", ep="", dp="", input_len=isl, output_len="201.8",
                concurrency="", scenario="offline", metric="total_tokens_per_s", value="9000", source_url=url,
                notes=notes)


def _cases(rows: list[dict[str, str]]) -> list[InferenceCase]:
    cases = [inference_case(r) for r in rows]
    mark_shared_prompts(cases)
    return cases


def test_a_flag_run_over_the_dataset_runs_prompts_is_read_with_varied_lengths():
    base, flag, other_doc, whole, other_len = _cases([
        _row("a", "217.4", "ShareGPT (1000 prompts)"),
        _row("b", "217.4", "--attention-backend=fa3"),
        _row("c", "217.4", "--attention-backend=fa3", url="https://example.org/other.md"),
        _row("d", "2000", "random 2K input"),
        _row("e", "1996.3", "random 2K input"),
    ])
    assert not base.fixed_lengths
    assert not flag.fixed_lengths and any("same prompts" in n for n in flag.notes_used)
    # another publication, a whole-number mean, a mean no dataset run shares: left as stated
    assert other_doc.fixed_lengths and whole.fixed_lengths and other_len.fixed_lengths


def test_validate_reads_the_shared_prompts_and_predicts_the_flag_run_like_the_dataset_run():
    rows = [_row("a", "217.4", "ShareGPT (1000 prompts)"), _row("b", "217.4", "--attention-backend=fa3")]
    a, b = prepare_rows(rows)
    assert not isinstance(a, Exception) and not isinstance(b, Exception)
    assert a.case.length_spread == b.case.length_spread and not b.case.fixed_lengths
