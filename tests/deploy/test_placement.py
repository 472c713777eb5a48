"""Launches that run as printed: one device set and port per instance, a router in front, a runnable script."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path

import pytest
from deploy_cases import make_spec

from stockpile.deploy import DeploySpec, load_table, parse, sglang_launches, vllm_launches
from stockpile.deploy.placement import place
from stockpile.deploy.script import bash_script, compose


def _launches(spec: DeploySpec):  # type: ignore[no-untyped-def]
    return vllm_launches(spec) if spec.engine == "vllm" else sglang_launches(spec)


def test_each_instance_has_its_own_devices_and_port(spec: DeploySpec) -> None:
    launches = _launches(spec)
    ports, devices = defaultdict(list), defaultdict(list)
    for la in launches:
        if la.port:
            ports[la.host].append(la.port)
        devices[la.host] += list(la.devices)
    for host in ports:
        assert len(ports[host]) == len(set(ports[host])), f"{host}: ports collide {ports[host]}"
        assert len(devices[host]) == len(set(devices[host])), f"{host}: devices shared {devices[host]}"
        assert max(devices[host], default=0) < spec.gpus_per_node
    for lay in spec.layouts():
        mine = [la for la in launches if la.role == lay.role]
        assert len({la.instance for la in mine}) == lay.instances
        assert all(len(la.devices) == min(lay.gpus, spec.gpus_per_node) for la in mine)
        for la in mine:   # the vendor's visibility variable names exactly the launch's devices
            assert la.env["CUDA_VISIBLE_DEVICES"] == ",".join(map(str, la.devices))


def test_router_fronts_every_instance_on_the_public_port(spec: DeploySpec) -> None:
    launches = _launches(spec)
    routers = [la for la in launches if la.role == "router"]
    several = spec.disaggregated is not None or spec.replicas > 1
    assert len(routers) == (1 if several else 0)
    serving = {(la.host, la.port) for la in launches if la.role != "router" and la.port}
    if not several:
        assert [p for _, p in serving] == [spec.port]
        return
    (router,) = routers
    assert router.port == spec.port and (router.host, spec.port) not in serving
    ns = parse(load_table(router.table), router.argv)
    urls = list(ns.worker_urls or []) if spec.disaggregated is None else (
        [p[0] for p in ns.prefill] + [d[0] for d in ns.decode])
    reached = {tuple(re.fullmatch(r"http://(.+):(\d+)", u).groups()) for u in urls}  # type: ignore[union-attr]
    assert reached == {(h, str(p)) for h, p in serving}


def test_colocated_secondary_ports_do_not_collide() -> None:
    spec = make_spec("pd_nixl", "sglang")          # two TP4 prefill instances share node-0
    pre = [la for la in sglang_launches(spec) if la.role == "prefill"]
    boot = [la.argv[la.argv.index("--disaggregation-bootstrap-port") + 1] for la in pre]
    assert {la.host for la in pre} == {"node-0"} and len(set(boot)) == 2
    vspec = make_spec("pd_nixl", "vllm")
    side = [la.env["VLLM_NIXL_SIDE_CHANNEL_PORT"] for la in vllm_launches(vspec) if la.host == "node-0"
            and la.role != "router"]
    assert len(side) == len(set(side)) == 2
    dp = make_spec("dense_dp4_tp2", "vllm")         # 3 replicas of TP2 x DP4 = 8 GPUs each: one per host
    assert len(place(dp).hosts) == 3


@pytest.mark.parametrize("chip,var", [("ascend-910b-64gb", "ASCEND_RT_VISIBLE_DEVICES"),
                                      ("mi300x-192gb", "HIP_VISIBLE_DEVICES"),
                                      ("gaudi3-128gb", "HABANA_VISIBLE_MODULES")])
def test_visible_devices_variable_follows_the_vendor(chip: str, var: str) -> None:
    spec = DeploySpec(model_id="Qwen/Qwen3-32B", chip_id=chip, engine="vllm", max_model_len=8192, tp=2, replicas=2)
    envs = [la.env for la in vllm_launches(spec) if la.role != "router"]
    assert [e[var] for e in envs] == ["0,1", "2,3"] and all("CUDA_VISIBLE_DEVICES" not in e for e in envs)


def test_mixed_pair_pools_get_their_own_hosts() -> None:
    spec = DeploySpec(model_id="Qwen/Qwen3-32B", chip_id="h20-96gb", engine="sglang", max_model_len=8192,
                      disaggregated={"prefill": {"instances": 2, "tp": 4, "chip_id": "h800-sxm-80gb"},
                                     "decode": {"instances": 1, "tp": 8}})
    by_role = {la.role: la.host for la in sglang_launches(spec)}
    assert by_role["prefill"].startswith("prefill-node") and by_role["decode"] == "node-0"
    assert by_role["router"] == "node-0"


def test_compose_is_one_host_with_reserved_devices() -> None:
    doc = compose(DeploySpec(model_id="Qwen/Qwen3-32B", chip_id="h100-sxm-80gb", engine="vllm", max_model_len=8192,
                             disaggregated={"prefill": {"instances": 2, "tp": 2},
                                            "decode": {"instances": 1, "tp": 4}}))
    svc = doc["services"]
    assert set(svc) == {"prefill-0", "prefill-1", "decode-0", "router"}
    ids = [svc[n]["deploy"]["resources"]["reservations"]["devices"][0]["device_ids"] for n in
           ("prefill-0", "prefill-1", "decode-0")]
    assert ids == [["0", "1"], ["2", "3"], ["4", "5", "6", "7"]]
    assert set(svc["router"]["depends_on"]) == {"prefill-0", "prefill-1", "decode-0"}
    # each engine container reads the host's model cache through HF_HOME, at the path it is mounted on
    for n in ("prefill-0", "prefill-1", "decode-0"):
        mounted = svc[n]["volumes"][0].rsplit(":", 1)[1]
        assert svc[n]["environment"]["HF_HOME"] == mounted
    assert "volumes" not in svc["router"]
    from stockpile.deploy import DeployError
    with pytest.raises(DeployError, match="one host"):
        compose(make_spec("tp8_pp2_multinode", "vllm"))


STUB = textwrap.dedent('''\
    #!{python}
    """Stands in for an engine or router: logs its argv and environment, answers GET /health on --port."""
    import http.server, json, os, sys
    argv = sys.argv[1:]
    port = int(argv[argv.index("--port") + 1])
    with open(os.environ["STUB_LOG"], "a") as f:
        f.write(json.dumps({{"prog": os.path.basename(sys.argv[0]), "argv": argv,
                            "devices": os.environ.get("CUDA_VISIBLE_DEVICES")}}) + "\\n")
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404); self.end_headers()
        def log_message(self, *a):
            pass
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
''')


def test_script_runs_as_printed_with_stand_in_engines(tmp_path: Path) -> None:
    """The generated bash script starts every process with its devices and port, waits for health, then the
    router: run here against stand-in `vllm` and `vllm-router` executables that serve /health."""
    import json
    import socket
    base = 0
    for _ in range(20):                              # a free block of 4 ports
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base < 60000:
            break
    spec = DeploySpec(model_id="Qwen/Qwen3-8B", chip_id="h100-sxm-80gb", engine="vllm", max_model_len=8192,
                      tp=2, replicas=3, port=base)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("vllm", "vllm-router"):
        exe = bindir / name
        exe.write_text(STUB.format(python=sys.executable))
        exe.chmod(0o755)
    launcher = tmp_path / "launch.sh"
    launcher.write_text(bash_script(spec))
    launcher.chmod(0o755)
    assert subprocess.run(["bash", "-n", str(launcher)]).returncode == 0
    log = tmp_path / "stub.jsonl"
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "STUB_LOG": str(log),
           "LOG_DIR": str(tmp_path / "logs")}
    proc = subprocess.Popen(["bash", str(launcher)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        deadline = time.time() + 60
        assert proc.stdout is not None
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("running"):
                break
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    text = "".join(lines)
    assert f"endpoint: http://127.0.0.1:{base}/v1" in text, text
    started = [json.loads(x) for x in log.read_text().splitlines()]
    engines = [s for s in started if s["prog"] == "vllm"]
    assert sorted(s["devices"] for s in engines) == ["0,1", "2,3", "4,5"]
    (router,) = [s for s in started if s["prog"] == "vllm-router"]
    urls = router["argv"][router["argv"].index("--worker-urls") + 1:][:3]
    assert urls == [f"http://127.0.0.1:{base + i}" for i in (1, 2, 3)]
