"""Deploy layer: turn a chosen serving configuration into what runs it.

``DeploySpec`` (spec.py) -> ``vllm serve`` argv (vllm.py), SGLang server/router argv (sglang.py),
Kubernetes manifests (k8s.py). Every emitted engine flag is checked against the flag tables in
``stockpile/data/engines/`` (flags.py), generated from the pinned engine releases.
"""

from .flags import FlagTable, build_parser, load_table, parse
from .k8s import k8s_manifests, to_yaml
from .launch import Launch, script
from .sglang import sglang_command, sglang_launches, sglang_router_command, sglang_shell
from .spec import DeployError, DeploySpec, DisaggSpec, Layout, RoleSpec, SpeculativeSpec
from .vllm import vllm_command, vllm_launches, vllm_shell

__all__ = [
    "DeployError", "DeploySpec", "DisaggSpec", "FlagTable", "Launch", "Layout", "RoleSpec",
    "SpeculativeSpec", "build_parser", "k8s_manifests", "load_table", "parse", "script",
    "sglang_command", "sglang_launches", "sglang_router_command", "sglang_shell", "to_yaml",
    "vllm_command", "vllm_launches", "vllm_shell",
]
