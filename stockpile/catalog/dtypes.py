"""Precision names: how publications, engines and quantisers spell a weight or KV-cache format, and the storage
dtype the models cost it as."""
from __future__ import annotations

# How publications and engines spell the precisions (quantisation formats and their packagings) -> the storage
# dtype the model costs. A weight format names the weights' bits: W4A16 / AWQ / GPTQ and W4A8 / W4AFP8 store int4
# weights, W8A8 int8 (SmoothQuant), NVFP4 / MXFP4 are fp4, block- or tensor-scaled FP8 and MXFP8 are fp8.
DTYPE_ALIASES = {
    "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32",
    "nvfp4": "fp4", "mxfp4": "fp4", "fp4_e2m1": "fp4", "e2m1": "fp4", "w4a4": "fp4", "w4a4_nvfp4": "fp4",
    "fp8_e4m3": "fp8", "e4m3": "fp8", "fp8_e5m2": "fp8", "e5m2": "fp8", "fp8_dynamic": "fp8", "fp8_block": "fp8",
    "fp8_blockwise": "fp8", "fp8_per_tensor": "fp8", "mxfp8": "fp8", "float8": "fp8", "w8a8_fp8": "fp8",
    "fp8_e4m3fn": "fp8", "w8a8": "int8", "w8a8_int8": "int8", "smoothquant": "int8", "int8_sq": "int8",
    "w4a16": "int4", "awq": "int4", "gptq": "int4", "int4_awq": "int4", "int4_gptq": "int4", "w4a8": "int4",
    "w4afp8": "int4", "int4_wo": "int4",
}


def normalise_dtype(dtype: str | None) -> str | None:
    """A precision as the model names it (bf16, fp8, int4, ...), from any common spelling; None and "auto" (an
    engine's --dtype auto: the checkpoint's own precision) are None, as unstated, and an unknown spelling is
    returned as given (lower case) for the caller to refuse by name."""
    if dtype is None or not str(dtype).strip() or is_auto(dtype):
        return None
    d = str(dtype).strip().lower()
    return DTYPE_ALIASES.get(d.replace("-", "_"), d)


def is_auto(dtype: str | None) -> bool:
    """"auto": the engine's own choice (vLLM's --dtype auto: the checkpoint's precision; --kv-cache-dtype auto:
    the engine's default KV-cache precision)."""
    return dtype is not None and str(dtype).strip().lower() == "auto"

