"""Parse launch argvs with an engine's own CLI code; runs under that engine's env python, not the project's.

    <engine env>/bin/python engine_parse.py TABLE IN.json OUT.json

IN.json is a list of full argvs (launcher included, $(VAR) references already expanded); OUT.json gets
``{"version": installed version, "results": [...]}`` with, per argv, ``{"args": {...}}`` (what the
engine's launcher parsed it into) or ``{"error": "..."}`` (argparse's message or the validation error).
Each argv goes through what the engine's launcher does before it loads a model:

- vllm: the ``vllm`` CLI's ``serve`` subcommand parser, then its ``validate`` (quick checks on the args);
- sglang: ``python -m sglang.launch_server`` → ``prepare_server_args`` (parser, then ``ServerArgs``);
- sglang_router, vllm_router (``python -m sglang_router.launch_router``, ``vllm-router``):
  ``parse_router_args`` (parser, then ``RouterArgs``), its ``_validate_router_args``, then
  ``Router.from_args``, which builds the Rust router's config without starting it.

Only the standard library and the engine are importable here (stockpile is not installed in the env).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
import importlib.metadata
import importlib.util
import io
import json
import os
import sys
from collections.abc import Callable
from typing import Any

DIST = {"vllm": "vllm", "sglang": "sglang", "sglang_router": "sglang-router", "vllm_router": "vllm-router"}


def _module_launcher(argv: list[str], module: str) -> list[str]:
    """``python3 -m MODULE ARGS...`` → ARGS, after checking the engine ships MODULE."""
    if argv[:2] != ["python3", "-m"] or argv[2] != module or importlib.util.find_spec(module) is None:
        raise ValueError(f"launcher {argv[:3]} is not `python3 -m {module}`")
    return argv[3:]


def _console_script(argv: list[str], script: str, dist: str) -> list[str]:
    """``SCRIPT ARGS...`` → ARGS, after checking the distribution installs that console script."""
    entry_points = importlib.metadata.distribution(dist).entry_points
    scripts = {ep.name for ep in entry_points if ep.group == "console_scripts"}
    if argv[0] != script or script not in scripts:
        raise ValueError(f"launcher {argv[0]!r} is not {dist}'s console script {script!r}")
    return argv[1:]


def vllm_parser() -> Callable[[list[str]], Any]:
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    cmd = ServeSubcommand()
    parser = FlexibleArgumentParser(prog="vllm")
    cmd.subparser_init(parser.add_subparsers(dest="subparser"))

    def parse(argv: list[str]) -> Any:
        ns = parser.parse_args(_console_script(argv, "vllm", "vllm"))
        if ns.subparser != "serve":
            raise ValueError(f"{argv[:2]} is not `vllm serve`")
        cmd.validate(ns)
        return vars(ns)

    return parse


def sglang_parser() -> Callable[[list[str]], Any]:
    import msgspec  # ServerArgs is a msgspec Struct in 0.5.23
    from sglang.srt.server_args import prepare_server_args

    def parse(argv: list[str]) -> Any:
        return msgspec.structs.asdict(prepare_server_args(_module_launcher(argv, "sglang.launch_server")))

    return parse


def _router_parser(package: str, launcher: Callable[[list[str]], list[str]]) -> Callable[[list[str]], Any]:
    """The SGLang and vLLM routers share a design: parse_router_args, then what launch_router does before
    it starts serving (_validate_router_args, Router.from_args, which builds the Rust router's config)."""
    launch = importlib.import_module(f"{package}.launch_router")
    router = importlib.import_module(f"{package}.router")

    def parse(argv: list[str]) -> Any:
        router_args = launch.parse_router_args(launcher(argv))
        router_args._validate_router_args()
        router.Router.from_args(copy.deepcopy(router_args))  # from_args rewrites the fields it is given
        return dataclasses.asdict(router_args)

    return parse


def sglang_router_parser() -> Callable[[list[str]], Any]:
    return _router_parser("sglang_router", lambda argv: _module_launcher(argv, "sglang_router.launch_router"))


def vllm_router_parser() -> Callable[[list[str]], Any]:
    return _router_parser("vllm_router", lambda argv: _console_script(argv, "vllm-router", "vllm-router"))


PARSERS = {"vllm": vllm_parser, "sglang": sglang_parser, "sglang_router": sglang_router_parser,
           "vllm_router": vllm_router_parser}


def _argparse_message(stderr: str, code: object) -> str:
    """argparse prints the whole usage before ``prog: error: ...``; keep the error lines."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln]
    return "\n".join(errors or lines[-5:]) or f"exit status {code}"


def _plain(value: Any) -> Any:
    """JSON-ready: containers become lists and str-keyed dicts; anything else not JSON becomes its repr."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return repr(value)


def check(parse: Callable[[list[str]], Any], argv: list[str]) -> dict[str, Any]:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return {"args": _plain(parse(argv))}
    except SystemExit as exc:  # argparse reports a bad argv by exiting
        return {"error": _argparse_message(err.getvalue(), exc.code)}
    except Exception as exc:  # noqa: BLE001 - the engine's validation error is the result
        return {"error": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    table, src, dst = sys.argv[1:4]
    argvs = json.loads(open(src).read())
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    parse = PARSERS[table]()
    out = {"version": importlib.metadata.version(DIST[table]), "results": [check(parse, a) for a in argvs]}
    with open(dst, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
