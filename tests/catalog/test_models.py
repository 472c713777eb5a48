import json

import pytest

from stockpile.catalog.models import get_model, implied_weight_dtype, list_models, spec_from_config
from stockpile.errors import DataError, InputError, UnknownNameError

# Published totals / active counts (billions) the issue names; 2 % tolerance.
PUBLISHED = {
    "meta-llama/Llama-3.1-8B-Instruct": (8.03, 8.03),
    "meta-llama/Llama-3.1-70B-Instruct": (70.6, 70.6),
    "meta-llama/Llama-3.1-405B": (405.9, 405.9),
    "deepseek-ai/DeepSeek-V3": (671, 37),
    "Qwen/Qwen3-235B-A22B": (235, 22),
    "mistralai/Mixtral-8x7B-v0.1": (46.7, 12.9),
}


@pytest.mark.parametrize("model_id,counts", PUBLISHED.items())
def test_published_parameter_counts(model_id, counts):
    m = get_model(model_id)
    assert m.params / 1e9 == pytest.approx(counts[0], rel=0.02)
    assert m.active_params / 1e9 == pytest.approx(counts[1], rel=0.02)


def test_every_shipped_total_matches_its_published_count():
    from stockpile.catalog.models import _index
    rounded = {e["id"] for e in _index().values() if "name only" in str(e.get("params_note", ""))}
    checked = 0
    for m in list_models():
        if not m.published_params_b or m.id in rounded:
            continue
        if m.has_vision:     # published counts include the vision tower; ours are the language model's
            assert 0.85 * m.published_params_b <= m.params / 1e9 <= 1.02 * m.published_params_b, m.id
        else:
            assert m.params / 1e9 == pytest.approx(m.published_params_b, rel=0.05), m.id
        checked += 1
    assert checked >= 40


def test_at_least_forty_models_and_the_families():
    models = list_models()
    assert len(models) >= 40
    kinds = {m.architecture for m in models}
    assert {"llama", "qwen3", "qwen3_moe", "mixtral", "deepseek_v3", "gpt_oss", "llama4", "ernie4_5_moe",
            "hunyuan", "glm4_moe", "kimi_k2", "mistral"} <= kinds


def test_the_long_tail_and_leaders_the_issue_names_are_shipped():
    for name in ("baidu/ERNIE-4.5-300B-A47B-PT", "mistralai/Mistral-Nemo-Instruct-2407", "01-ai/Yi-34B",
                 "codellama/CodeLlama-34b-hf", "moonshotai/Kimi-K2-Instruct", "openai/gpt-oss-20b"):
        assert get_model(name).params > 0
    ernie = get_model("baidu/ERNIE-4.5-300B-A47B-PT")
    # 54 layers, the first three dense, 64 experts of which 8 per token
    assert (ernie.moe_layers, ernie.dense_layers, ernie.experts, ernie.experts_per_token) == (51, 3, 64, 8)
    assert ernie.active_params / 1e9 == pytest.approx(47, rel=0.02)


def test_kv_cache_bytes_gqa_and_mla():
    llama = get_model("meta-llama/Llama-3.1-8B-Instruct")
    assert llama.kv_bytes_per_token(2.0) == 2 * 8 * 128 * 32 * 2          # K+V, 8 kv heads, 32 layers, bf16
    ds = get_model("deepseek-ai/DeepSeek-V3")
    assert ds.is_mla and ds.kv_bytes_per_token(2.0) == (512 + 64) * 61 * 2  # latent + rope key per layer


def test_moe_structure_of_deepseek_and_llama4():
    ds = get_model("deepseek-ai/DeepSeek-R1")
    assert (ds.experts, ds.experts_per_token, ds.dense_layers, ds.moe_layers) == (256, 8, 3, 58)
    mav = get_model("meta-llama/Llama-4-Maverick-17B-128E-Instruct")
    assert mav.moe_layers == mav.layers // 2            # interleaved MoE every other layer


@pytest.mark.parametrize("name,expected", [
    ("RedHatAI/Llama-4-Scout-17B-16E-Instruct-FP8-dynamic", "meta-llama/Llama-4-Scout-17B-16E-Instruct"),
    ("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", "Qwen/Qwen3-235B-A22B"),
    ("deepseek-ai/DeepSeek-R1-0528", "deepseek-ai/DeepSeek-R1"),
    ("META-LLAMA/LLAMA-3.1-8B-INSTRUCT", "meta-llama/Llama-3.1-8B-Instruct"),
    # fine-tunes and distillations that keep their base model's shape
    ("deepseek-ai/DeepSeek-R1-Distill-Llama-70B", "meta-llama/Llama-3.1-70B-Instruct"),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "Qwen/Qwen2.5-32B"),
    ("Qwen/QwQ-32B", "Qwen/Qwen2.5-32B"),
    ("deepseek-ai/DeepSeek-V3.1", "deepseek-ai/DeepSeek-V3"),
    ("Qwen/Qwen3-Coder-30B-A3B-Instruct", "Qwen/Qwen3-30B-A3B"),
    # quantisers' additions after the precision: AMD Quark's FP8 KV scales and per-token scales, a revision
    ("amd/Llama-3.3-70B-Instruct-FP8-KV", "meta-llama/Llama-3.3-70B-Instruct"),
    ("amd/Llama-3.1-8B-Instruct-FP8-PTPC", "meta-llama/Llama-3.1-8B-Instruct"),
    ("nvidia/DeepSeek-R1-0528-FP4-v2", "deepseek-ai/DeepSeek-R1"),
])
def test_aliases_and_suffixes_resolve(name, expected):
    assert get_model(name).id.lower() in (expected.lower(),) or expected.lower() in [
        a.lower() for a in get_model(name).aliases]


def test_an_alias_keeps_its_own_context_window():
    """A fine-tune aliased to its base's config but trained to another context (index.yaml alias_context) is
    refused only past its own window, a packaging of it too; the base keeps the config's."""
    assert get_model("microsoft/phi-4").max_position == 16384
    assert get_model("microsoft/Phi-4-reasoning").max_position == 32768
    assert get_model("mistralai/Devstral-Small-2505-FP8").max_position == 131072
    assert get_model("mistralai/Mistral-Small-24B-Instruct-2501").max_position == 32768
    from stockpile.perf.request import EstimateRequest, run_estimate
    req = dict(model="microsoft/Phi-4-reasoning", chip="h100-sxm-80gb", isl=20000, osl=1000, concurrency=1)
    assert run_estimate(EstimateRequest(**req)).ttft_ms > 0
    with pytest.raises(InputError, match="16,384"):
        run_estimate(EstimateRequest(**{**req, "model": "microsoft/phi-4"}))


def test_suffix_implies_dtype():
    assert implied_weight_dtype("Qwen/Qwen3-32B-AWQ") == "int4"
    assert implied_weight_dtype("RedHatAI/x-FP8-dynamic") == "fp8"
    assert implied_weight_dtype("Qwen/Qwen3-32B") is None
    assert implied_weight_dtype("nvidia/DeepSeek-R1-0528-FP4-v2") == "fp4"


def test_a_revision_is_stripped_only_after_a_precision():
    """'-v2' after '-FP4' is a checkpoint revision; on its own it is part of the name (DeepSeek-V2 is not R1)."""
    assert get_model("deepseek-ai/DeepSeek-V2").id == "deepseek-ai/DeepSeek-V2"
    with pytest.raises(UnknownNameError):
        get_model("meta-llama/Llama-3.1-8B-Instruct-v7")


def test_unknown_model_suggests():
    with pytest.raises(UnknownNameError) as e:
        get_model("meta-llama/Llama-3.1-7B-Instruct")
    assert "Llama-3.1-8B" in str(e.value)


def test_unknown_model_type_names_the_fields():
    with pytest.raises(DataError) as e:
        spec_from_config({"model_type": "mamba9", "hidden_size": 8}, model_id="x/y")
    assert "hidden_size" in str(e.value) and "mamba9" in str(e.value)


def test_config_path_is_accepted(tmp_path):
    cfg = dict(model_type="llama", hidden_size=1024, num_hidden_layers=4, num_attention_heads=8,
               num_key_value_heads=8, intermediate_size=4096, vocab_size=1000)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert get_model(str(tmp_path)).layers == 4
    assert get_model(str(tmp_path / "config.json")).hidden == 1024


def test_a_fine_tune_of_a_catalogued_base_model_finds_it() -> None:
    """Issue 13's mapping gap: an -Instruct/-chat variant whose base the catalog holds under a packaging suffix."""
    from stockpile.catalog import get_model
    assert get_model("codellama/CodeLlama-34b-Instruct-hf").id == "codellama/CodeLlama-34b-hf"
    assert get_model("meta-llama/Llama-2-13b-chat-hf").id == "meta-llama/Llama-2-13b-hf"
    assert get_model("meta-llama/Llama-2-7b-chat-hf").id == "meta-llama/Llama-2-7b-chat-hf"   # exact names win


@pytest.mark.parametrize("name,expected", [
    ("NousResearch/Hermes-3-Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct"),
    ("cognitivecomputations/dolphin-2.9-llama3-8b", "meta-llama/Meta-Llama-3-8B"),
    ("teknium/OpenHermes-2.5-Mistral-7B", "mistralai/Mistral-7B-v0.1"),
    ("casperhansen/llama-3-70b-instruct-awq", "meta-llama/Meta-Llama-3-70B"),
    ("NousResearch/Nous-Hermes-2-Mixtral-8x7B-DPO", "mistralai/Mixtral-8x7B-v0.1"),
    ("unsloth/Qwen2.5-7B-Instruct-bnb-4bit", "Qwen/Qwen2.5-7B-Instruct"),
])
def test_a_fine_tune_named_after_its_base_finds_the_base(name, expected) -> None:
    """A community fine-tune or re-packaging that names its base between separators is read as that base."""
    assert get_model(name).id == expected


@pytest.mark.parametrize("name", [
    "google/codegemma-7b",                  # "gemma-7b" inside a word: another model's name, not its base
    "Qwen/Qwen2.5-Math-72B-Instruct",       # the base's name is not contiguous in it
    "meta-llama/Llama-3.1-8B-Instruct-v7",  # a bare revision of a catalogued name may have another shape
])
def test_a_name_that_only_resembles_a_catalogued_one_is_refused(name) -> None:
    with pytest.raises(UnknownNameError):
        get_model(name)


def test_an_answer_says_when_a_model_was_read_as_the_base_its_name_carries() -> None:
    from stockpile.catalog.models import resolution_note
    note = resolution_note("NousResearch/Hermes-3-Llama-3.1-8B")
    assert note is not None and "meta-llama/Llama-3.1-8B-Instruct" in note
    # a catalogued id, an alias or a packaging variant passes silently
    assert resolution_note("meta-llama/Llama-3.1-8B-Instruct") is None
    assert resolution_note("RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic") is None


def test_estimate_and_validate_carry_the_read_as_note(tmp_path) -> None:
    from stockpile.calibration.validate import validate_file
    from stockpile.perf.request import EstimateRequest, run_estimate
    e = run_estimate(EstimateRequest(model="teknium/OpenHermes-2.5-Mistral-7B", chip="h100-sxm-80gb", isl=512,
                                     osl=128, concurrency=8))
    assert any("mistralai/Mistral-7B-v0.1" in a for a in e.assumptions)
    f = tmp_path / "rows.csv"
    f.write_text("id,model,accelerator,num_accelerators,engine,weight_dtype,kv_dtype,tp,pp,ep,dp,input_len,"
                 "output_len,concurrency,scenario,metric,value,source_url,notes\n"
                 "r1,teknium/OpenHermes-2.5-Mistral-7B,h100-sxm-80gb,1,vllm,bf16,,1,1,,1,512,128,8,server,"
                 "tpot_ms,7.0,https://example.com,\n")
    row = validate_file(f)["rows"][0]
    assert row["status"] == "ok" and any("read as mistralai/Mistral-7B-v0.1" in a for a in row["assumed"])


def test_olmoe_phi3small_and_nemotron_are_read() -> None:
    """Three model_types the catalog used to refuse: OLMoE's 64 experts (width from intermediate_size, not
    the class default), Phi-3-small's gegelu MLP under its own field name and its tied head, Nemotron's
    squared-ReLU MLP without a gate. Totals as the papers state them (OLMoE: 7B, 1B active)."""
    olmoe = get_model("allenai/OLMoE-1B-7B-0924")
    assert (olmoe.experts, olmoe.experts_per_token, olmoe.ffn_expert) == (64, 8, 1024)
    assert 6.8e9 < olmoe.params < 7.0e9 and 1.2e9 < olmoe.active_params < 1.35e9
    phi = get_model("microsoft/Phi-3-small-8k-instruct")
    assert phi.ffn_dense == 14336 and phi.gated_mlp and phi.tie_embeddings and phi.kv_heads == 8
    nem = get_model("nvidia/Minitron-4B-Base")
    assert not nem.gated_mlp and nem.ffn_dense == 9216 and nem.head_dim == 128
    gated = spec_from_config({"model_type": "llama", "hidden_size": 3072, "num_hidden_layers": 32,
                              "num_attention_heads": 24, "num_key_value_heads": 8, "intermediate_size": 9216,
                              "vocab_size": 256000}, model_id="x/gated")
    assert nem.params < gated.params                  # no gate: a third fewer MLP weights than a gated twin


def test_granite_hybrid_reads_as_mamba_mixers_with_moe_in_every_layer() -> None:
    """Granite 4.0-H: 36 Mamba-2 and 4 attention mixers, each layer followed by the same MoE block (72 gated
    experts, 10 active, and a shared MLP): IBM's 32B total / 9B active, and a KV cache on the 4 attention layers
    only (2 x 8 heads x 128 x 2 bytes x 4 = 16,384 bytes per token)."""
    m = get_model("ibm-granite/granite-4.0-h-small")
    assert (m.layers, m.linear_layers, m.moe_layers, m.experts, m.experts_per_token) == (40, 36, 40, 72, 10)
    assert m.gated_mlp and m.ffn_shared == 1536
    assert 31.5e9 < m.params < 32.5e9 and 8.5e9 < m.active_params < 9.1e9
    assert m.kv_bytes_per_token(2.0) == 16384
    # without experts, the shared MLP is the dense one
    dense = spec_from_config({"model_type": "granitemoehybrid", "hidden_size": 2048, "num_hidden_layers": 4,
                              "num_attention_heads": 16, "num_key_value_heads": 4, "vocab_size": 1000,
                              "intermediate_size": 512, "shared_intermediate_size": 8192, "num_local_experts": 0,
                              "layer_types": ["mamba", "attention", "mamba", "mamba"]}, model_id="x/dense-h")
    assert not dense.is_moe and dense.ffn_dense == 8192 and dense.linear_layers == 3
    with pytest.raises(DataError, match="layer_types"):     # one entry per layer, or the sizes would be wrong
        spec_from_config({"model_type": "granitemoehybrid", "hidden_size": 2048, "num_hidden_layers": 4,
                          "num_attention_heads": 16, "vocab_size": 1000, "intermediate_size": 512,
                          "layer_types": "mamba,attention"}, model_id="x/bad-h")


def test_command_r7b_config_reads_three_sliding_layers_in_four() -> None:
    """A cohere2 config (Command R7B's shapes as transformers documents them: three sliding-window layers of 4,096
    tokens, then a global one) keeps 8 of its 32 layers' KV at long context, and its head is tied by default."""
    m = spec_from_config({"model_type": "cohere2", "hidden_size": 4096, "num_hidden_layers": 32,
                          "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
                          "vocab_size": 256000}, model_id="x/r7b")
    assert (m.sliding_layers, m.sliding_window, m.tie_embeddings) == (24, 4096, True)
    assert m.kv_bytes_per_token(2.0, context=100_000) < m.kv_bytes_per_token(2.0, context=4096) * 8 / 32 * 1.5


def test_arctic_reads_its_residual_mlp_beside_the_experts() -> None:
    """Snowflake Arctic's shapes (hidden 7168, 35 layers, 128 experts of 4864, top-2, a dense residual MLP of the
    hidden width beside every MoE layer) come to Snowflake's 480B total / 17B active; without the residual flag
    and with a MoE layer every second layer, the others keep a dense MLP."""
    arctic = {"model_type": "arctic", "hidden_size": 7168, "num_hidden_layers": 35, "num_attention_heads": 56,
              "num_key_value_heads": 8, "intermediate_size": 4864, "num_local_experts": 128,
              "num_experts_per_tok": 2, "moe_layer_frequency": 1, "parallel_attn_mlp_res": True, "vocab_size": 32000}
    m = spec_from_config(arctic, model_id="x/arctic")
    assert 470e9 < m.params < 490e9 and 16.5e9 < m.active_params < 18e9 and m.ffn_shared == 7168
    half = spec_from_config({**arctic, "moe_layer_frequency": 2, "parallel_attn_mlp_res": False}, model_id="x/half")
    assert (half.moe_layers, half.dense_layers, half.ffn_shared) == (17, 18, 0)


def test_an_answer_says_when_the_catalogued_config_is_reconstructed(tmp_path) -> None:
    """A catalog entry whose config.json was rebuilt from a recipe, a card or class defaults
    (`config_reconstructed` in index.yaml) is named in estimate's assumptions and validate's `assumed`; a copied
    config, a fine-tune read as its base and a user's config.json path get no such line."""
    from stockpile.catalog.models import model_notes
    granite = model_notes("ibm-granite/granite-4.0-h-small")
    assert len(granite) == 1 and "reconstructed from IBM's model card table" in granite[0]
    assert model_notes("meta-llama/Llama-3.1-8B-Instruct") == []
    hermes = model_notes("NousResearch/Hermes-3-Llama-3.1-8B")
    assert len(hermes) == 1 and "read as meta-llama/Llama-3.1-8B-Instruct" in hermes[0]
    from stockpile.perf.request import EstimateRequest, run_estimate
    out = run_estimate(EstimateRequest(model="xai-org/grok-1", chip="h200-sxm-141gb", gpus=8, isl=1024, osl=256))
    assert any("xai-org/grok-1: its config.json is reconstructed" in a for a in out.assumptions)
    assert model_notes("lab/sized-by-the-scaling-law-70b") == []     # not catalogued: nothing to say, no error


@pytest.mark.parametrize("name,expected", [
    ("Qwen/Qwen3-8B@main", "Qwen/Qwen3-8B"), ("openai/gpt-oss-120b:latest", "openai/gpt-oss-120b"),
    ("gpt-oss:20b", "openai/gpt-oss-20b"), ("qwen3:30b-a3b", "Qwen/Qwen3-30B-A3B"),
    ("deepseek-r1:671b", "deepseek-ai/DeepSeek-R1"),
])
def test_a_revision_or_a_tag_names_the_same_model(name, expected):
    assert get_model(name).id == expected


def test_a_size_tag_that_does_not_fit_the_bare_name_is_refused():
    with pytest.raises(UnknownNameError):     # Ollama's deepseek-r1:8b is a distilled 8B, not DeepSeek-R1
        get_model("deepseek-r1:8b")
