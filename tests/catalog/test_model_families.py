"""The architectures beyond plain decoders (issue 13: a row of any model NVIDIA's aiconfigurator ships a config for is
predicted, not refused): hybrid Mamba-2 (Nemotron-H / Nemotron 3, latent MoE), NAS-pruned Llama (Nemotron Super
49B), value heads narrower than keys (MiMo-V2), block-sparse attention (MiniMax-M3), Gemma 4, Step 3.7,
Qwen3-VL, DeepSeek-V4's compressed attention, Kimi K3's KDA layers."""
import json
from importlib import resources

import pytest

from stockpile.catalog.models import get_model, spec_from_config
from stockpile.errors import DataError

# (catalog name, total and active parameters in the model's name, billions)
NAMED = [
    ("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B", 30, 3),
    ("nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8", 120, 12),
    ("nvidia/NVIDIA-Nemotron-3-Ultra-550B-A55B", 550, 55),
    ("nvidia/NVIDIA-Nemotron-3.5-Lightning-30B-A3B-NVFP4", 30, 3),
    ("nvidia/Nemotron-H-56B-Base-8K", 56, 56),
    ("nvidia/Llama-3.3-Nemotron-Super-49B-v1", 49, 49),
    ("XiaomiMiMo/MiMo-V2-Flash", 309, 15),
    ("google/gemma-4-26B-A4B-it", 26, 4),
    ("google/gemma-4-31B-it", 31, 31),
    ("Qwen/Qwen3.6-27B", 27, 27),
    ("nvidia/Qwen3.6-35B-A3B-NVFP4", 35, 3),
    ("Qwen/Qwen3-VL-235B-A22B-Instruct", 235, 22),
    ("Qwen/Qwen3-VL-8B-Instruct", 8, 8),
    ("deepseek-ai/DeepSeek-V4-Flash", 284, 13),
    ("nvidia/DeepSeek-V4-Pro-NVFP4", 1600, 49),
    ("microsoft/Phi-3.5-MoE-instruct", 42, 6.6),
    ("meta-llama/Llama-3.2-90B-Vision-Instruct", 88, 88),       # the language model's 87.7B of 88.6B
    ("Qwen/Qwen2.5-VL-7B-Instruct", 7.6, 7.6),
    ("EleutherAI/gpt-j-6b", 6, 6),
    ("EleutherAI/gpt-neox-20b", 20, 20),
    ("tiiuae/falcon-40b-instruct", 40, 40),
    ("tiiuae/falcon-7b", 7, 7),
    ("bigscience/bloom", 176, 176),
    ("facebook/opt-13b", 13, 13),
    ("facebook/opt-30b", 30, 30),
    ("microsoft/phi-2", 2.7, 2.7),
    ("baichuan-inc/Baichuan2-13B-Chat", 13, 13),
    ("codellama/CodeLlama-7b-Instruct-hf", 7, 7),
    ("codellama/CodeLlama-13b-hf", 13, 13),
    ("ibm-granite/granite-3.1-8b-instruct", 8, 8),
    ("LGAI-EXAONE/EXAONE-3.5-7.8B-Instruct", 7.8, 7.8),
    ("HuggingFaceTB/SmolLM3-3B", 3, 3),
    ("internlm/internlm3-8b-instruct", 8, 8),
    ("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B", 1.78, 1.78),   # its own output head: 1.5B + 0.23B untied
    ("Qwen/Qwen-72B", 72, 72),
    ("Qwen/Qwen-7B-Chat", 7.7, 7.7),
    ("allenai/OLMo-2-1124-7B-Instruct", 7.3, 7.3),
    ("allenai/OLMo-2-1124-13B", 13.7, 13.7),
    ("allenai/OLMo-2-0325-32B", 32.2, 32.2),
    ("bigcode/starcoder2-7b", 7.17, 7.17),
    ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", 1.1, 1.1),
    ("CohereLabs/aya-23-8B", 8, 8),
    ("MiniMaxAI/MiniMax-M1-40k", 456, 45.9),
]


@pytest.mark.parametrize("name,total,active", NAMED)
def test_counts_match_the_sizes_in_the_names(name, total, active):
    """Names round (A3B is 3.2-3.6B) and Gemma 4's two head shapes are read as one: within 12 % total, 20 % active."""
    m = get_model(name)
    assert m.params / 1e9 == pytest.approx(total, rel=0.12)
    assert m.active_params / 1e9 == pytest.approx(active, rel=0.2)


def _config(file_name: str) -> dict:
    return json.loads((resources.files("stockpile") / "data" / "models" / file_name).read_text())


def test_cross_attention_layers_hold_weights_and_no_text_cache():
    """Llama 3.2 11B Vision: 8 of its 40 layers attend to the image; a text token's KV cache is 32 layers' worth
    (2 x 8 KV heads x 128 x 32 layers x 2 bytes = 131 kB), and the 9.8B language-model weights count them."""
    m = get_model("meta-llama/Llama-3.2-11B-Vision-Instruct")
    assert m.layers == 40 and m.linear_layers == 8 and m.linear_state_bytes_per_layer == 0
    assert m.kv_bytes_per_token(2) == 2 * 8 * 128 * 32 * 2
    assert 9.6e9 < m.params < 10.0e9


def test_nemotron_h_blocks_mamba_attention_and_latent_moe():
    nano = get_model("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B")
    # MEMEM*EMEMEM*...: 23 Mamba-2 mixers, 6 attention layers, 23 MoE blocks
    assert (nano.linear_layers, nano.full_layers, nano.moe_layers, nano.dense_layers) == (23, 6, 23, 0)
    assert not nano.gated_mlp                                  # squared-ReLU experts: up and down only
    assert nano.kv_bytes_per_token(2.0) == 6 * 2 * 2 * 128 * 2   # only the attention layers cache K and V
    # each sequence holds the Mamba-2 state: 64 heads x 64 x 128 in fp32 per mixer (plus the conv window)
    assert nano.linear_layers * nano.linear_state_bytes_per_layer >= 23 * 64 * 64 * 128 * 4
    sup = get_model("nvidia/NVIDIA-Nemotron-3-Super-120B-A12B")
    assert sup.moe_latent == 1024
    assert sup.expert_params == sup.moe_layers * 512 * 2 * 1024 * 2688   # experts work in the latent width


def test_nemotron_h_block_list_reads_as_the_pattern():
    cfg = _config("nvidia__NVIDIA-Nemotron-3-Nano-30B-A3B-BF16.json")
    code = {"M": "mamba", "*": "attention", "E": "moe", "-": "mlp"}
    listed = {k: v for k, v in cfg.items() if k not in ("hybrid_override_pattern", "num_hidden_layers")}
    listed["layers_block_type"] = [code[c] for c in cfg["hybrid_override_pattern"]]
    a, b = spec_from_config(cfg, model_id="a"), spec_from_config(listed, model_id="b")
    assert (a.params, a.active_params, a.layers) == (b.params, b.active_params, b.layers)
    bad = dict(cfg, hybrid_override_pattern="MEX")
    with pytest.raises(DataError, match="hybrid_override_pattern"):
        spec_from_config(bad, model_id="x")


def test_nas_layers_without_attention_cache_nothing():
    m = get_model("nvidia/Llama-3.3-Nemotron-Super-49B-v1")
    assert (m.layers, m.linear_layers, m.kv_heads) == (80, 31, 8)
    assert m.linear_params_per_layer == 0 and m.linear_state_bytes_per_layer == 0
    assert m.kv_bytes_per_token(2.0) == 49 * 2 * 8 * 128 * 2


def test_value_heads_narrower_than_keys():
    m = get_model("XiaomiMiMo/MiMo-V2-Flash")
    assert (m.head_dim, m.value_dim, m.kv_heads) == (192, 128, 4)
    assert m.kv_elems_per_token_layer() == 4 * (192 + 128)
    assert (m.sliding_layers, m.sliding_window) == (39, 128)


def test_block_sparse_attention_and_dense_width():
    m = get_model("MiniMaxAI/MiniMax-M3")
    assert m.sparse_attn_topk == 16 * 128 and m.index_heads == 4
    assert (m.dense_layers, m.ffn_dense, m.ffn_expert, m.experts) == (3, 12288, 3072, 128)


def test_step_and_gemma4_shared_widths():
    step = get_model("stepfun-ai/Step-3.7-Flash")
    assert (step.ffn_shared, step.sliding_layers, step.mtp_layers) == (1280, 33, 3)
    gemma = get_model("google/gemma-4-26B-A4B")
    assert (gemma.ffn_shared, gemma.experts_per_token, gemma.kv_heads) == (2112, 8, 2)


@pytest.mark.parametrize("name", ["nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8", "nvidia/Llama-3.3-Nemotron-Super-49B-v1",
                                  "XiaomiMiMo/MiMo-V2-Flash", "MiniMaxAI/MiniMax-M3", "google/gemma-4-26B-A4B-it",
                                  "deepseek-ai/DeepSeek-V4-Flash"])
def test_every_new_family_is_predicted(name):
    from stockpile.catalog.chips import get_chip
    from stockpile.perf.inference import estimate
    from stockpile.perf.layout import resolve_layout
    r = estimate(get_model(name), get_chip("h200-sxm-141gb"), layout=resolve_layout(gpus=8, tp=8), engine="vllm",
                 isl=1024, osl=1024, concurrency=32)
    assert r.fits and r.tpot_ms is not None and 0 < r.tpot_ms < 200 and (r.output_tokens_per_s or 0) > 0


def test_deepseek_v4_compressed_attention():
    m = get_model("deepseek-ai/DeepSeek-V4-Flash")
    # 43 layers: 2 window-only, 21 CSA (every 4 tokens pooled), 20 HCA (every 128); one shared 512-wide entry
    assert (m.csa_layers, m.hca_layers, m.kv_elems_per_token_layer(), m.default_weight_dtype) == (21, 20, 512, "fp4")
    window, pooled, index = 43 * 512 * 128 / 8192, 512 * (21 / 4 + 20 / 128), 21 / 4 * 128 * 0.5
    assert m.kv_bytes_per_token(1.0, 8192) == pytest.approx(window + pooled + index)
    assert m.kv_bytes_per_token(1.0, 8192) < get_model("deepseek-ai/DeepSeek-V3").kv_bytes_per_token(1.0) / 5
    fp8 = get_model("sgl-project/DeepSeek-V4-Flash-FP8")           # model_type deepseek_ref: the same shapes
    assert fp8.id == m.id
    from stockpile.perf.operators import ModelConsts, compressed_entries
    mc = ModelConsts.of(m)
    # CSA reads at most its top-k per layer, HCA all of its pooled entries: sublinear in the context until k
    assert compressed_entries(mc, 1024.0) == pytest.approx(21 * 256 + 20 * 8)
    assert compressed_entries(mc, 65536.0) == pytest.approx(21 * 512 + 20 * 512)
    with pytest.raises(DataError, match="compress_ratios"):
        spec_from_config({**_config("deepseek-ai__DeepSeek-V4-Flash.json"), "compress_ratios": [4, 8]}, model_id="x")


def test_kimi_k3_linear_and_mla_layers_with_latent_experts():
    m = get_model("moonshotai/Kimi-K3")
    assert (m.layers, m.linear_layers, m.full_layers, m.is_mla) == (93, 69, 24, True)
    assert (m.experts, m.experts_per_token, m.moe_latent, m.moe_layers) == (896, 16, 3584, 92)
    assert m.kv_bytes_per_token(2.0) == 24 * (512 + 64) * 2                  # only the MLA layers cache per token
    assert m.linear_state_bytes_per_layer >= 96 * 128 * 128 * 4               # the KDA state, fp32, per sequence


def test_an_unknown_architecture_is_named():
    with pytest.raises(DataError, match="kimi_k9"):
        spec_from_config({"model_type": "kimi_k9", "hidden_size": 7168, "num_hidden_layers": 93,
                          "num_attention_heads": 96, "vocab_size": 163840}, model_id="moonshotai/Kimi-K9")


@pytest.mark.parametrize("file_name,field,value", [
    ("stepfun-ai__Step-3.7-Flash.json", "share_expert_dim", "abc"),
    ("nvidia__NVIDIA-Nemotron-3-Nano-30B-A3B-BF16.json", "n_routed_experts", None),
    ("deepseek-ai__DeepSeek-V4-Flash.json", "index_topk", "many"),
    ("moonshotai__Kimi-K3.json", "linear_attn_config", {"kda_layers": ["x"]}),
])
def test_a_malformed_family_field_is_named_not_a_crash(file_name, field, value):
    cfg = _config(file_name)
    target = cfg["text_config"] if "text_config" in cfg and field in cfg["text_config"] else cfg
    target[field] = value
    with pytest.raises(DataError):
        spec_from_config(cfg, model_id="x/y")


def test_an_estimate_of_a_family_without_measured_rows_says_so():
    from stockpile.catalog.chips import get_chip
    from stockpile.perf.inference import estimate
    from stockpile.perf.layout import resolve_layout

    def notes(name):
        return " ".join(estimate(get_model(name), get_chip("h200-sxm-141gb"), layout=resolve_layout(gpus=8, tp=8),
                                 engine="vllm", isl=1024, osl=256, concurrency=8).assumptions)
    assert "no measured row of a nemotron_h model" in notes("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B")
    assert "no measured row" not in notes("meta-llama/Llama-3.1-70B-Instruct")


def test_which_models_the_measurements_back():
    from stockpile.calibration.bands import model_family_validated
    assert not model_family_validated(get_model("deepseek-ai/DeepSeek-V4-Flash"))
    assert model_family_validated(get_model("deepseek-ai/DeepSeek-R1"))
    assert model_family_validated(get_model("google/gemma-4-31B-it"))      # a plain dense decoder, windows and all
    assert not model_family_validated(get_model("google/gemma-4-26B-A4B"))  # its experts: no gemma4 rows
    # training rows cover DeepSeek-V3 but no GLM-5
    assert model_family_validated(get_model("deepseek-ai/DeepSeek-V3"), training=True)
    assert not model_family_validated(get_model("zai-org/GLM-5"), training=True)


def test_families_that_name_their_shapes_their_own_way():
    """A multi-query flag is one shared KV head (Falcon-7B, StarCoder), Falcon-40B's new decoder states its KV
    heads as n_head_kv, Qwen 1.x counts both halves of its gated MLP in intermediate_size, BLOOM calls its width
    n_embed, OPT its FFN ffn_dim, and those classes tie the output head to the embedding unless told otherwise."""
    base = {"vocab_size": 1000, "num_attention_heads": 16}
    mq = spec_from_config({**base, "model_type": "falcon", "hidden_size": 1024, "num_hidden_layers": 4,
                           "multi_query": True}, model_id="x/falcon-mq")
    assert mq.kv_heads == 1 and not mq.gated_mlp and mq.tie_embeddings
    new = spec_from_config({**base, "model_type": "falcon", "hidden_size": 1024, "num_hidden_layers": 4,
                            "multi_query": True, "new_decoder_architecture": True, "n_head_kv": 4},
                           model_id="x/falcon-new")
    assert new.kv_heads == 4
    q1 = spec_from_config({**base, "model_type": "qwen", "hidden_size": 1024, "num_hidden_layers": 4,
                           "intermediate_size": 4096, "kv_channels": 64}, model_id="x/qwen1")
    assert q1.ffn_dense == 2048 and q1.gated_mlp and q1.kv_heads == 16
    bloom = spec_from_config({**base, "model_type": "bloom", "n_embed": 1024, "n_layer": 4}, model_id="x/bloom")
    assert bloom.hidden == 1024 and bloom.ffn_dense == 4096 and not bloom.gated_mlp and bloom.tie_embeddings
    opt = spec_from_config({**base, "model_type": "opt", "hidden_size": 1024, "num_hidden_layers": 4,
                            "ffn_dim": 4096}, model_id="x/opt")
    assert opt.ffn_dense == 4096 and not opt.gated_mlp and opt.tie_embeddings
    sc2 = spec_from_config({**base, "model_type": "starcoder2", "hidden_size": 1024, "num_hidden_layers": 4,
                            "num_key_value_heads": 4, "intermediate_size": 4096, "sliding_window": 4096},
                           model_id="x/starcoder2")
    assert sc2.sliding_layers == 4 and sc2.sliding_window == 4096 and not sc2.gated_mlp


def test_dbrx_reads_its_nested_attention_and_expert_blocks():
    """DBRX keeps KV heads and the experts in attn_config / ffn_config: read, 16 experts of which 4 per token,
    132B in all, 36B active (Databricks' figures)."""
    m = get_model("databricks/dbrx-instruct")
    assert (m.kv_heads, m.experts, m.experts_per_token, m.ffn_expert, m.moe_layers) == (8, 16, 4, 10752, 40)
    assert m.params / 1e9 == pytest.approx(132, rel=0.02) and m.active_params / 1e9 == pytest.approx(36, rel=0.03)


def test_ant_groups_ling_moe_reads_shared_experts_and_its_first_dense_layers():
    lite, flash = get_model("inclusionAI/Ling-lite-1.5"), get_model("inclusionAI/Ling-flash-2.0")
    assert lite.ffn_shared == 2 * 1408 and lite.dense_layers == 0          # two shared experts, every layer MoE
    assert flash.ffn_shared == 1024 and flash.dense_layers == 1            # one 1,024-wide shared expert, layer 0 dense
    assert lite.active_params / 1e9 == pytest.approx(2.75, rel=0.02)
