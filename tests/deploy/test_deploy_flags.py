"""The flag tables are the contract: emitted argv is checked against them and parsed by them."""

from __future__ import annotations

import importlib.util
import itertools
import json

import pytest
from deploy_cases import expand_env, launches, walk

from stockpile.deploy import DeployError, DeploySpec, build_parser, load_table, parse
from stockpile.deploy.flags import ArgvBuilder

TABLES = ("vllm", "sglang", "sglang_router")


@pytest.mark.parametrize("name", TABLES)
def test_table_header_pins_release_and_source(name: str) -> None:
    table = load_table(name)
    assert table.version[0].isdigit() and table.command
    import yaml

    from stockpile.deploy.flags import DATA_DIR

    raw = yaml.safe_load((DATA_DIR / f"{name}.yaml").read_text())
    assert raw["wheel_sha256"] and raw["sources"] and all(s.startswith("https://") for s in raw["sources"])
    for flag in table.flags.values():
        assert flag.kind in {"value", "switch", "toggle"}
        assert flag.name.startswith("--")
        assert flag.kind != "toggle" or flag.negations
        assert flag.choices is None or len(flag.choices) > 0


def test_tables_know_the_flags_the_exporters_rely_on() -> None:
    vllm, sgl = load_table("vllm"), load_table("sglang")
    for f in ["--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size",
              "--enable-expert-parallel", "--kv-cache-dtype", "--speculative-config",
              "--kv-transfer-config", "--nnodes", "--node-rank", "--master-addr", "--headless"]:
        assert vllm.get(f).name == f
    for f in ["--tp-size", "--pp-size", "--dp-size", "--attn-dp-size", "--ep-size", "--dist-init-addr",
              "--disaggregation-mode", "--disaggregation-transfer-backend", "--speculative-algorithm"]:
        assert sgl.get(f).name == f
    assert sgl.get("--expert-parallel-size").name == "--ep-size"  # alias, one flag
    assert sgl.get("--enable-dp-attention").deprecated  # superseded by --attn-dp-size in 0.5.23


def test_every_emitted_flag_is_in_the_table(spec: DeploySpec) -> None:
    for name, argv in launches(spec):
        seen = walk(load_table(name), argv)
        assert seen, argv


def test_argv_round_trips_through_table_parser(spec: DeploySpec) -> None:
    for name, argv in launches(spec):
        ns = parse(load_table(name), argv)
        if name == "vllm":
            assert ns.model_tag == spec.model_id
            assert ns.max_model_len == spec.max_model_len
            assert ns.enable_prefix_caching is spec.prefix_caching
            if ns.speculative_config is not None:
                assert ns.speculative_config["num_speculative_tokens"] == spec.speculative.num_draft_tokens
        elif name == "sglang":
            assert ns.model_path == spec.model_id and ns.context_length == spec.max_model_len
            assert ns.port == spec.port and ns.host == "0.0.0.0"
            assert ns.disable_radix_cache is (not spec.prefix_caching)
        else:
            assert ns.pd_disaggregation and len(ns.prefill) == spec.disaggregated.prefill.instances


def test_parallel_layout_survives_parsing(spec: DeploySpec) -> None:
    for lay in spec.layouts():
        role = None if lay.role == "serve" else lay.role
        if spec.engine == "vllm":
            from stockpile.deploy.vllm import vllm_command

            ns = parse(load_table("vllm"), vllm_command(spec, role))
            tp, dp = ns.tensor_parallel_size, ns.data_parallel_size or 1
            assert tp * ns.pipeline_parallel_size * dp == lay.gpus
            assert bool(ns.enable_expert_parallel) is (lay.ep > 1)
        else:
            from stockpile.deploy.sglang import sglang_command

            ns = parse(load_table("sglang"), sglang_command(spec, role))
            dp = 1 if ns.dp_size is None else ns.dp_size
            assert ns.tp_size * (ns.pp_size or 1) * dp == lay.gpus
            assert (ns.attn_dp_size or 1) == (lay.dp if lay.attention_dp else 1)
            assert (ns.ep_size or 1) == lay.ep


def test_builder_rejects_what_the_table_does_not_accept() -> None:
    vllm, sgl = load_table("vllm"), load_table("sglang")
    with pytest.raises(DeployError, match="--expert-parallel-size"):
        ArgvBuilder(vllm).value("--expert-parallel-size", 8)  # not a vLLM flag
    with pytest.raises(DeployError, match="deprecated"):
        ArgvBuilder(sgl).switch("--enable-dp-attention")
    with pytest.raises(DeployError, match="choices"):
        ArgvBuilder(sgl).value("--kv-cache-dtype", "fp8")  # SGLang spells it fp8_e4m3
    with pytest.raises(DeployError, match="valid int"):
        ArgvBuilder(vllm).value("--tensor-parallel-size", "eight")
    with pytest.raises(DeployError, match="method"):
        ArgvBuilder(vllm).value("--speculative-config", {"method": "medusa2", "num_speculative_tokens": 2})
    with pytest.raises(DeployError, match="toggle"):
        ArgvBuilder(vllm).switch("--enable-prefix-caching")


def test_unknown_quantization_hint_is_refused_by_the_table() -> None:
    from stockpile.deploy import sglang_command, vllm_command

    for engine, fn in (("vllm", vllm_command), ("sglang", sglang_command)):
        bad = DeploySpec(model_id="m/m", chip_id="h100-sxm-80gb", engine=engine, max_model_len=4096,
                         quantization="superquant")
        with pytest.raises(DeployError, match="quantization"):
            fn(bad)


def test_table_parser_refuses_unknown_flags_and_abbreviations() -> None:
    p = build_parser(load_table("vllm"))
    with pytest.raises(DeployError):
        p.parse_args(["m", "--no-such-flag", "1"])
    with pytest.raises(DeployError):
        p.parse_args(["m", "--tensor-parallel", "2"])  # prefix of --tensor-parallel-size


def _installed(module: str) -> str | None:
    try:
        return importlib.util.find_spec(module) and module
    except (ImportError, ValueError):
        return None


@pytest.mark.skipif(_installed("vllm") is None,
                    reason="vllm is not installed (it pulls CUDA torch); the table parser stands in")
def test_vllm_own_parser_accepts_argv(spec: DeploySpec) -> None:  # pragma: no cover - needs vllm
    import vllm
    from vllm.entrypoints.common.cli_args import make_arg_parser
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    if spec.engine != "vllm":
        pytest.skip("vLLM parser checks vLLM specs")
    if vllm.__version__ != load_table("vllm").version:
        pytest.skip(f"installed vllm {vllm.__version__} != table {load_table('vllm').version}")
    parser = make_arg_parser(FlexibleArgumentParser(prog="vllm serve"))
    for _, argv in launches(spec):
        ns = parser.parse_args(expand_env(argv[2:]))
        assert ns.model_tag == spec.model_id


@pytest.mark.skipif(_installed("sglang") is None,
                    reason="sglang is not installed (it pulls CUDA torch); the table parser stands in")
def test_sglang_own_parser_accepts_argv(spec: DeploySpec) -> None:  # pragma: no cover - needs sglang
    import argparse

    import sglang
    from sglang.srt.server_args import ServerArgs

    if spec.engine != "sglang":
        pytest.skip("SGLang parser checks SGLang specs")
    if sglang.__version__ != load_table("sglang").version:
        pytest.skip(f"installed sglang {sglang.__version__} != table {load_table('sglang').version}")
    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    for name, argv in launches(spec):
        if name == "sglang":
            ns = parser.parse_args(expand_env(argv[3:]))
            assert ns.model_path == spec.model_id


def test_json_values_are_compact_and_valid(spec: DeploySpec) -> None:
    for _, argv in launches(spec):
        for flag, value in itertools.pairwise(argv):
            if flag in ("--speculative-config", "--kv-transfer-config"):
                assert isinstance(json.loads(value), dict) and " " not in value
