"""The flag tables are the contract: emitted argv is checked against them and parsed by them."""

from __future__ import annotations

import itertools
import json
import os
import shlex
from dataclasses import dataclass

import engine_envs
import pytest
from deploy_cases import CASES, ENGINES, expand_env, launches, make_spec, walk

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
            assert ns.port >= spec.port and ns.host == "0.0.0.0"
            assert ns.disable_radix_cache is (not spec.prefix_caching)
        else:   # a router: one endpoint on spec.port in front of every instance
            assert ns.port == spec.port
            if spec.disaggregated is None:
                assert len(ns.worker_urls) == spec.replicas
            else:
                assert len(ns.prefill) == spec.disaggregated.prefill.instances
                assert len(ns.decode) == spec.disaggregated.decode.instances
                assert ns.vllm_pd_disaggregation if name == "vllm_router" else ns.pd_disaggregation


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


# The engines' own parsers: every argv the exporters emit for a case goes through the pinned release's CLI
# code (engine_parse.py, run by the engine's own env python; `make engines` installs those envs). One
# subprocess per engine parses every case's argvs at once; the tests below read their case's results.
REQUIRE_ENGINES = os.environ.get("STOCKPILE_REQUIRE_ENGINES") == "1"  # set by `make test`: no silent skips

# per table, an argv its engine must refuse (and a word of the refusal): proves a rejection comes back
REFUSED = {
    "vllm": (["vllm", "serve", "m/m", "--no-such-flag", "1"], "--no-such-flag"),
    "sglang": (["python3", "-m", "sglang.launch_server", "--model-path", "m/m", "--kv-cache-dtype", "fp8"],
               "fp8"),  # SGLang spells it fp8_e4m3
    "sglang_router": (["python3", "-m", "sglang_router.launch_router", "--policy", "fastest"], "fastest"),
    "vllm_router": (["vllm-router", "--policy", "fastest"], "fastest"),
}


@dataclass
class OwnParses:
    """Which argv of which table's batch each case launched (or the exporter's error), and the answers."""

    launched: dict[tuple[str, str], list[tuple[str, list[str], int]] | Exception]
    refused: dict[str, int]  # table -> index of REFUSED[table] in its batch
    runs: dict[str, dict]  # table -> engine_envs.parse_argvs's answer

    def result(self, table: str, index: int) -> dict:
        run = self.runs[table]
        if "missing" in run:
            (pytest.fail if REQUIRE_ENGINES else pytest.skip)(run["missing"])
        assert "failed" not in run, run.get("failed")
        want = load_table(table).version
        assert run["version"] == want, (f"{table} {run['version']} is installed but the table pins {want}: "
                                        f"run `make engines` (or remove {engine_envs.env_dir(table)})")
        return run["results"][index]

    def parsed(self, case: str, engine: str) -> list[tuple[str, dict]]:
        """(table, what the engine's own CLI parsed) for every process the case starts; fails on a refusal."""
        items = self.launched[case, engine]
        if isinstance(items, Exception):
            raise items
        out = []
        for table, argv, index in items:
            result = self.result(table, index)
            if "error" in result:
                pytest.fail(f"{table} {load_table(table).version} refuses {shlex.join(argv)}:\n{result['error']}")
            out.append((table, result["args"]))
        return out


@pytest.fixture(scope="session")
def own_parses(tmp_path_factory: pytest.TempPathFactory) -> OwnParses:
    launched: dict[tuple[str, str], list[tuple[str, list[str], int]] | Exception] = {}
    batches: dict[str, list[list[str]]] = {}
    for case in CASES:
        for engine in ENGINES:
            try:
                processes = launches(make_spec(case, engine))
            except Exception as exc:  # noqa: BLE001 - reported by that case's test
                launched[case, engine] = exc
                continue
            items = []
            for table, argv in processes:
                batch = batches.setdefault(table, [])
                items.append((table, expand_env(argv), len(batch)))
                batch.append(expand_env(argv))
            launched[case, engine] = items
    refused = {}
    for table, (argv, _) in REFUSED.items():
        refused[table] = len(batches.setdefault(table, []))
        batches[table].append(argv)
    return OwnParses(launched, refused, engine_envs.parse_argvs(batches, tmp_path_factory.mktemp("engine_parse")))


def _check_router(name: str, args: dict, spec: DeploySpec) -> None:
    """A router (vllm-router, sglang-router): one endpoint on spec.port in front of every instance."""
    assert args["port"] == spec.port
    if spec.disaggregated is None:
        assert len(args["worker_urls"]) == spec.replicas
    else:
        assert args["vllm_pd_disaggregation" if name == "vllm_router" else "pd_disaggregation"]
        assert len(args["prefill_urls"]) == spec.disaggregated.prefill.instances
        assert len(args["decode_urls"]) == spec.disaggregated.decode.instances


@pytest.mark.parametrize("case", CASES)
def test_vllm_own_parser_accepts_argv(own_parses: OwnParses, case: str) -> None:
    spec = make_spec(case, "vllm")
    parsed = own_parses.parsed(case, "vllm")
    assert any(name == "vllm" for name, _ in parsed), "no `vllm serve` launch"
    for name, args in parsed:
        if name == "vllm":
            assert args["model_tag"] == spec.model_id
            assert args["max_model_len"] == spec.max_model_len
            assert args["enable_prefix_caching"] is spec.prefix_caching
            if spec.speculative is not None:
                assert args["speculative_config"]["num_speculative_tokens"] == spec.speculative.num_draft_tokens
        else:
            assert name == "vllm_router", name
            _check_router(name, args, spec)


@pytest.mark.parametrize("case", CASES)
def test_sglang_own_parser_accepts_argv(own_parses: OwnParses, case: str) -> None:
    spec = make_spec(case, "sglang")
    parsed = own_parses.parsed(case, "sglang")
    assert any(name == "sglang" for name, _ in parsed), "no `sglang.launch_server` launch"
    for name, args in parsed:
        if name == "sglang":
            assert args["model_path"] == spec.model_id and args["context_length"] == spec.max_model_len
            assert args["port"] >= spec.port and args["host"] == "0.0.0.0"
            assert args["disable_radix_cache"] is (not spec.prefix_caching)
        else:
            assert name == "sglang_router", name
            _check_router(name, args, spec)


@pytest.mark.parametrize("table", REFUSED)
def test_own_parsers_refuse_a_bad_argv(own_parses: OwnParses, table: str) -> None:
    result = own_parses.result(table, own_parses.refused[table])
    assert REFUSED[table][1] in result.get("error", ""), result


def test_json_values_are_compact_and_valid(spec: DeploySpec) -> None:
    for _, argv in launches(spec):
        for flag, value in itertools.pairwise(argv):
            if flag in ("--speculative-config", "--kv-transfer-config"):
                assert isinstance(json.loads(value), dict) and " " not in value
