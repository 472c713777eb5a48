"""The README's export examples, run as a user would: distinct ports and devices per instance, a router in
front of several instances, and the model's own context length (or the longest that fits, said so)."""
from __future__ import annotations

import json
import re
import shlex
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stockpile.catalog import get_model
from stockpile.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"
runner = CliRunner()


def _examples() -> list[list[str]]:
    text = README.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        m = re.search(r"(?:\.venv/bin/)?stockpile (export .*)", line)
        if not m or "..." in m.group(1):
            continue
        argv = shlex.split(m.group(1).split("#")[0])
        for flag in ("--format", "--out"):        # the JSON of the same deployment is what we check
            if flag in argv:
                i = argv.index(flag)
                del argv[i:i + 2]
        out.append(argv)
    return out


EXAMPLES = _examples()


def test_the_readme_has_export_examples() -> None:
    assert len(EXAMPLES) >= 2 and {a[a.index("--target") + 1] for a in EXAMPLES} >= {"vllm", "sglang"}


@pytest.mark.parametrize("argv", EXAMPLES, ids=lambda a: " ".join(a[:5]))
def test_readme_export_runs_as_printed(argv: list[str]) -> None:
    r = runner.invoke(app, [*argv, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    ports, devices = defaultdict(list), defaultdict(list)
    for la in doc["launches"]:
        if la["port"]:
            ports[la["host"]].append(la["port"])
        devices[la["host"]] += la["devices"]
    for host in ports:
        assert len(ports[host]) == len(set(ports[host])), (host, ports[host])
        assert len(devices[host]) == len(set(devices[host])), (host, devices[host])
    spec = doc["spec"]
    instances = spec["replicas"] if not spec["disaggregated"] else (
        spec["disaggregated"]["prefill"]["instances"] + spec["disaggregated"]["decode"]["instances"])
    routers = [la for la in doc["launches"] if la["role"] == "router"]
    assert len(routers) == (1 if instances > 1 else 0)
    own = get_model(argv[argv.index("--model") + 1]).max_position
    assert spec["max_model_len"] == own or "longest" in doc["context_note"]
