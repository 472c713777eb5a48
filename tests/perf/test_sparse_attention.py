"""DeepSeek sparse attention (DSA): the kernels' work per query (operators.sparse_work)."""
from __future__ import annotations

import numpy as np
import pytest

from stockpile.catalog.models import get_model
from stockpile.perf.operators import SPARSE_HEAD_TILE, ModelConsts, sparse_work


def test_a_model_without_sparse_attention_keeps_the_dense_count():
    mc = ModelConsts.of(get_model("deepseek-ai/DeepSeek-R1"))     # dense MLA
    assert float(sparse_work(mc, 300.0, 8)) == 1.0
    mc = ModelConsts.of(get_model("MiniMaxAI/MiniMax-M3"))        # block-sparse GQA read with a top-k: not DSA's kernels
    assert mc.sparse_topk > 0 and float(sparse_work(mc, 300.0, 8)) == 1.0
    mc = ModelConsts.of(get_model("Qwen/Qwen3-32B"))
    assert np.all(sparse_work(mc, np.array([10.0, 5000.0]), np.array([1, 8])) == 1.0)


def test_a_sparse_query_walks_its_whole_top_k_list_in_padded_head_tiles():
    m = get_model("deepseek-ai/DeepSeek-V3.2")
    mc = ModelConsts.of(m)
    topk, heads = m.sparse_attn_topk, m.heads
    assert topk == 2048 and heads == 128
    # attention DP (all 128 heads on a rank): a short context costs the whole list, a long one exactly top-k
    assert float(sparse_work(mc, 512.0, 1)) == pytest.approx(topk / 512.0)
    assert float(sparse_work(mc, 8000.0, 1)) == pytest.approx(1.0)
    # TP8: 16 heads per rank padded to a tile of 64
    assert float(sparse_work(mc, 8000.0, 8)) == pytest.approx(SPARSE_HEAD_TILE / (heads / 8))
    assert float(sparse_work(mc, 1024.0, 8)) == pytest.approx(2.0 * 4.0)
    # TP2: 64 heads per rank fill one tile
    assert float(sparse_work(mc, 8000.0, 2)) == pytest.approx(1.0)
    # vectorised over rows, and never below the dense count
    w = sparse_work(mc, np.array([1.0, 100.0, 2048.0, 1e6]), np.array([1, 4, 8, 16]))
    assert w.shape == (4,) and np.all(w >= 1.0)


def test_a_short_context_costs_sparse_attention_its_top_k_compute():
    """A decode step's attention at TP8 on an H200, compute-bound at this batch: DeepSeek-V3.2's barely shrinks
    from a 2,048-token context to a 256-token one (only its reads do), DeepSeek-R1's dense MLA shrinks with it."""
    from stockpile.catalog.chips import get_chip
    from stockpile.perf.calibration import load_calibration
    from stockpile.perf.operators import ChipConsts, stage_time
    cc = ChipConsts.of(get_chip("h200-sxm-141gb"))
    p = load_calibration().params("hopper", "vllm")

    def attention(name: str, ctx: float) -> float:
        mc = ModelConsts.of(get_model(name))
        parts = stage_time(mc, cc, p, attn_tp=8, attn_dp=1, pp=1, moe_ep=1, moe_tp=8, wbytes=1.0, kvbytes=1.0,
                           gemm_peak=cc.peak_bf16 * 2, dtype_eff=1.0, wstream=1.0, seq_host=1.0, dec_seqs=512.0,
                           dec_tokens=512.0, dec_ctx=ctx, pre_tokens=0.0, pre_ctx=ctx, parts=True)
        return float(parts["attention"])
    sparse = attention("deepseek-ai/DeepSeek-V3.2", 256.0) / attention("deepseek-ai/DeepSeek-V3.2", 2048.0)
    dense = attention("deepseek-ai/DeepSeek-R1", 256.0) / attention("deepseek-ai/DeepSeek-R1", 2048.0)
    assert dense < 0.2 < 0.5 < sparse
