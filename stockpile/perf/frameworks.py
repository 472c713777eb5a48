"""What each training framework does by default, as the step-time formula sees it (perf/training.py): which ZeRO
stages it offers, whether it overlaps TP, DP and EP traffic, fuses elementwise work, runs eager PyTorch ops, waits on
the host in a dropless MoE; and which calibration key its kernel quality has on a chip family. Read from the
frameworks' documentation and code, not fitted (docs/training-model.md, "Framework behaviour")."""
from __future__ import annotations

from dataclasses import dataclass

from stockpile.errors import UnknownNameError

# chip families that share a training calibration group (a family's GEMM efficiency, perf/training.py)
FAMILY_GROUPS = {"ampere": "ampere", "volta": "ampere", "hopper": "hopper", "blackwell": "blackwell",
                 "blackwell-ultra": "blackwell", "tpu": "tpu", "ascend": "ascend", "gaudi": "gaudi",
                 "cdna2": "amd", "cdna3": "amd", "cdna4": "amd"}


@dataclass(frozen=True)
class Framework:
    """What a training framework does by default (its documentation), not fitted."""

    zero: tuple[int, ...]       # sharding stages it offers: 0 none, 1 optimizer, 2 +grads, 3 +params (FSDP)
    sp: bool = True             # sequence parallelism with TP (Korthikanti 2022)
    tp_overlap: bool = False    # TP collectives overlapped with GEMMs (TE userbuffers, async TP, XLA)
    dp_overlap: bool = True     # gradient reduce / parameter gather overlapped with compute
    ep_overlap: bool = False    # MoE all-to-all overlapped with compute
    dualpipe: bool = False      # DeepSeek-V3 DualPipe: bidirectional pipeline, EP fully hidden
    fused: bool = False         # elementwise kernels fused by a compiler (XLA, torch.compile)
    eager: bool = False         # norms, rotary and gated activation written as chains of eager PyTorch ops
    flash: bool = True          # a fused attention kernel (FlashAttention and kin); False: the score matrix in HBM
    moe_sync: bool = False      # dropless MoE that waits on the host each MoE layer to size its expert GEMMs
    partial_recompute: bool = False  # full recompute of only as many layers per stage as memory needs
    grad_bytes: float = 4.0     # main-gradient buffer bytes per parameter (fp32; 2 where reduced in bf16)
    native_attn: bool = False   # Hopper-native attention (Transformer Engine's cuDNN fused attention), not FA2
    kernels: str = ""           # calibration key of its kernel quality when shared with another entry


FRAMEWORKS: dict[str, Framework] = {
    # Megatron-Core, NeMo, MindSpeed; --recompute-method block --recompute-num-layers N (NeMo 1.x:
    # activations_checkpoint_num_layers) recomputes N layers per stage
    "megatron": Framework(zero=(0, 1), tp_overlap=True, ep_overlap=True, moe_sync=True, partial_recompute=True,
                          native_attn=True),
    # NeMo 1.x (NeMo Framework Launcher recipes, containers up to 24.07): Megatron-Core models under Apex's
    # DistributedFusedAdam, whose gradient buffer the launcher's performance recipes keep in bf16
    # (optim.grad_sync_dtype=bf16, examples/training/*/h100/*.sh)
    "nemo": Framework(zero=(0, 1), tp_overlap=True, ep_overlap=True, moe_sync=True, partial_recompute=True,
                      grad_bytes=2.0, kernels="megatron", native_attn=True),
    "megatron2021":  Framework(zero=(0,), sp=False, dp_overlap=False, flash=False),  # Narayanan et al. 2021 runs
    "megatron2022": Framework(zero=(0, 1), kernels="megatron", flash=False),   # Korthikanti 2022: SP, no TP overlap
    "mosaic": Framework(zero=(2, 3)),                                          # Composer + PyTorch FSDP
    # plain PyTorch FSDP training scripts (AMD's pytorch-training-benchmark in the ROCm PyTorch container); its kernel
    # factor is fitted on AMD rows only
    "pytorch-fsdp": Framework(zero=(2, 3)),
    "torchtitan": Framework(zero=(3,), eager=True),                            # FSDP2; async TP/compile via notes
    "maxtext": Framework(zero=(3,), tp_overlap=True, fused=True),              # JAX/XLA on TPU
    "deepspeed": Framework(zero=(0, 1, 2, 3), sp=False),
    "mindspore": Framework(zero=(0, 1)),                                       # MindFormers on Ascend
    "internevo": Framework(zero=(1,)),                                         # hybrid ZeRO
    "meta": Framework(zero=(1, 2)),                                            # Llama 3 4D parallelism
    "hai-llm": Framework(zero=(1,), dualpipe=True, ep_overlap=True),           # DeepSeek-V3 report sec. 3.2
}


# frameworks whose kernels exist only on Ascend: their factor is already the NPU stack's
ASCEND_ONLY = ("mindspore",)


def kernel_key(framework: str, family: str) -> str:
    """The calibration key of a framework's kernel quality on a chip family. On Ascend a GPU framework runs its
    NPU port (torchtitan-npu on torch_npu, Megatron as MindSpeed), whose kernels are Huawei's, not the CUDA
    ones: it gets its own factor ("torchtitan-npu"), so Ascend rows do not move the factor of the same framework
    on GPUs (held out, the H100 torchtitan runs had been predicted 48 % fast through the factor the two
    torchtitan-npu rows pushed to its bound). A port no row measures borrows its parent's fitted factor
    (TrainCalibration.params): the fallback runs one way only."""
    fw = (FRAMEWORKS[framework].kernels or framework) if framework in FRAMEWORKS else framework
    if FAMILY_GROUPS.get(family, family) == "ascend" and fw not in ASCEND_ONLY:
        return f"{fw}-npu"
    return fw


def fw_flags(fw: Framework) -> dict[str, float]:
    """A framework's behaviour as numbers the step-time formula takes (arrays when stacked)."""
    return {"fw_sp": float(fw.sp), "fw_tp_overlap": float(fw.tp_overlap), "fw_dp_overlap": float(fw.dp_overlap),
            "fw_ep_overlap": float(fw.ep_overlap), "dualpipe": float(fw.dualpipe), "fused": float(fw.fused),
            "eager": float(fw.eager),
            "flash": float(fw.flash), "moe_sync": float(fw.moe_sync), "moe_capacity": 0.0,
            "fw_grad_bytes": fw.grad_bytes, "fw_native_attn": float(fw.native_attn)}


def framework(name: str) -> Framework:
    if name not in FRAMEWORKS:
        raise UnknownNameError("framework", name, FRAMEWORKS)
    return FRAMEWORKS[name]
