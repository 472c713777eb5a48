"""A tiny Llama model written at test time: a GGUF file for llama.cpp and a matching Hugging Face directory.

The tokenizer is byte-level BPE over exactly the 256 bytes, so one byte is one token on both sides (llama.cpp
and the Hugging Face `tokenizers` library that the load generator uses to count tokens). GGUF requires at
least one merge, so the vocabulary carries a single merge of the bytes 0xC0 0xC1, which never occur in valid
UTF-8 and so never fire. The weights are random, but the output head is biased (through a constant component
of every embedding) towards ASCII letters, so the generated text re-tokenizes to exactly as many tokens as were
generated, and towards end-of-text above all, so a request stops after one token unless it carries
`ignore_eos` (which the load generator must send to get outputs of the requested length).

Size: 16M parameters in float32 (64 MB), about 3 ms a token on one CPU thread; a smaller model streams its
tokens faster than the client reads them, so several arrive in one chunk and TTFT can equal the E2E latency.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HIDDEN = 512
LAYERS = 4
HEADS = 8
KV_HEADS = 4
FFN = 2048
CONTEXT = 4096
EOS = "<|endoftext|>"
_MERGE = (0xC0, 0xC1)


def _byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters (the ByteLevel alphabet)."""
    printable = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def vocabulary() -> list[str]:
    """Token strings by id: the 256 bytes (id = byte value), the one inert merge, then the end-of-text token."""
    b2u = _byte_to_unicode()
    return [b2u[b] for b in range(256)] + [b2u[_MERGE[0]] + b2u[_MERGE[1]], EOS]


def _merge_line() -> str:
    b2u = _byte_to_unicode()
    return f"{b2u[_MERGE[0]]} {b2u[_MERGE[1]]}"


def write_tokenizer(out: Path) -> None:
    """tokenizer.json, tokenizer_config.json and special_tokens_map.json for a byte-level BPE tokenizer."""
    vocab = vocabulary()
    eos_id = len(vocab) - 1
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": eos_id, "content": EOS, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True}],
        "normalizer": None,
        "pre_tokenizer": byte_level,
        "post_processor": {**byte_level, "trim_offsets": False},
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(vocab[:-1])}, "merges": [_merge_line()]},
    }
    (out / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": EOS, "eos_token": EOS, "unk_token": None,
        "add_bos_token": False, "add_eos_token": False, "model_max_length": CONTEXT, "clean_up_tokenization_spaces": False,
    }))
    (out / "special_tokens_map.json").write_text(json.dumps({"bos_token": EOS, "eos_token": EOS}))


def write_config(out: Path) -> dict:
    """A Hugging Face config.json describing the same model (Stockpile reads this one as the model)."""
    cfg = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
        "head_dim": HIDDEN // HEADS, "intermediate_size": FFN, "vocab_size": len(vocabulary()),
        "max_position_embeddings": CONTEXT, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": False, "torch_dtype": "float32", "bos_token_id": len(vocabulary()) - 1,
        "eos_token_id": len(vocabulary()) - 1, "hidden_act": "silu",
    }
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    return cfg


def write_gguf(path: Path, seed: int = 0) -> None:
    """The model's weights (float32, random) and tokenizer in one GGUF file."""
    import gguf  # test-only dependency

    rng = np.random.default_rng(seed)
    vocab = vocabulary()
    n_vocab = len(vocab)
    head_dim = HIDDEN // HEADS

    def rand(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("stockpile-tiny-llama")
    w.add_context_length(CONTEXT)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(vocab)
    w.add_token_types([gguf.TokenType.NORMAL] * (n_vocab - 1) + [gguf.TokenType.CONTROL])
    w.add_token_merges([_merge_line()])
    w.add_bos_token_id(n_vocab - 1)
    w.add_eos_token_id(n_vocab - 1)
    w.add_add_bos_token(False)
    w.add_add_eos_token(False)

    # every embedding has a large constant first component that dominates the residual stream through the
    # (small, random) blocks, so after the final RMS norm the first hidden unit is nearly sqrt(HIDDEN) ~ 20;
    # the output head's first column then puts letters ~40 logits above the other bytes, end-of-text higher still
    embd = rand(n_vocab, HIDDEN)
    embd[:, 0] = 10.0
    w.add_tensor("token_embd.weight", embd)
    for i in range(LAYERS):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(HIDDEN, np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", rand(HIDDEN, HIDDEN))
        w.add_tensor(f"blk.{i}.attn_k.weight", rand(KV_HEADS * head_dim, HIDDEN))
        w.add_tensor(f"blk.{i}.attn_v.weight", rand(KV_HEADS * head_dim, HIDDEN))
        w.add_tensor(f"blk.{i}.attn_output.weight", rand(HIDDEN, HIDDEN))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(HIDDEN, np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", rand(FFN, HIDDEN))
        w.add_tensor(f"blk.{i}.ffn_up.weight", rand(FFN, HIDDEN))
        w.add_tensor(f"blk.{i}.ffn_down.weight", rand(HIDDEN, FFN))
    w.add_tensor("output_norm.weight", np.ones(HIDDEN, np.float32))
    head = rand(n_vocab, HIDDEN, scale=0.2)
    letters = [b for b in range(256) if chr(b).isascii() and chr(b).isalpha()]
    head[:, 0] = -1.0
    head[letters, 0] = 1.0
    head[n_vocab - 1, 0] = 3.0   # end-of-text is by far the likeliest: only `ignore_eos` gives full-length outputs
    w.add_tensor("output.weight", head)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_model(out: Path, seed: int = 0) -> Path:
    """Write the Hugging Face directory (config + tokenizer) and `model.gguf` into `out`; returns the GGUF path."""
    out.mkdir(parents=True, exist_ok=True)
    write_config(out)
    write_tokenizer(out)
    path = out / "model.gguf"
    write_gguf(path, seed)
    return path
