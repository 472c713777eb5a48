"""Kubernetes manifests load into the official client's models and carry the right GPUs/selectors/probes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from deploy_cases import expand_env, make_spec

from stockpile.deploy import DeployError, DeploySpec, k8s_manifests, load_table, parse, to_yaml
from stockpile.deploy.k8s import LWS_API, NODE_ROLE, accelerator

client = pytest.importorskip("kubernetes.client")

MODEL = {("apps/v1", "Deployment"): "V1Deployment", ("v1", "Service"): "V1Service",
         ("v1", "ServiceAccount"): "V1ServiceAccount",
         ("rbac.authorization.k8s.io/v1", "Role"): "V1Role",
         ("rbac.authorization.k8s.io/v1", "RoleBinding"): "V1RoleBinding"}


def load(obj: Any, kind: str) -> Any:
    """Deserialize with the official client, then check nothing was dropped as unknown."""
    api = client.ApiClient()
    model = api._ApiClient__deserialize(json.loads(json.dumps(obj)), kind)  # the client's own decoder
    assert api.sanitize_for_serialization(model) == obj, f"{kind}: fields lost in the client model"
    return model


def pod_templates(m: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if m["kind"] == "Deployment":
        return [("leader", m["spec"]["template"])]
    lwt = m["spec"]["leaderWorkerTemplate"]
    return [("leader", lwt["leaderTemplate"]), ("worker", lwt["workerTemplate"])]


def test_every_manifest_loads_into_client_models(spec: DeploySpec) -> None:
    manifests = k8s_manifests(spec, namespace="llm")
    for m in manifests:
        assert m["metadata"]["namespace"] == "llm"
        if m["apiVersion"] == LWS_API:
            assert m["kind"] == "LeaderWorkerSet"
            lwt = m["spec"]["leaderWorkerTemplate"]
            assert isinstance(lwt["size"], int) and lwt["size"] >= 2
            assert m["spec"]["replicas"] >= 1
            for _, tpl in pod_templates(m):
                load(tpl, "V1PodTemplateSpec")
            load(m["metadata"], "V1ObjectMeta")
        else:
            load(m, MODEL[(m["apiVersion"], m["kind"])])


def test_workload_kind_follows_node_span(spec: DeploySpec) -> None:
    manifests = k8s_manifests(spec)
    workloads = [m for m in manifests if m["kind"] in ("Deployment", "LeaderWorkerSet")
                 and m["metadata"]["labels"]["app.kubernetes.io/component"] != "router"]
    assert len(workloads) == len(spec.layouts())
    for m, lay in zip(workloads, spec.layouts()):
        assert m["kind"] == ("Deployment" if lay.nodes == 1 else "LeaderWorkerSet")
        if lay.nodes > 1:
            assert m["spec"]["leaderWorkerTemplate"]["size"] == lay.nodes
        assert m["spec"]["replicas"] == lay.instances


def test_gpus_selector_probes_shm(spec: DeploySpec) -> None:
    _, resource, selector = accelerator(spec.chip_id)
    assert selector == {"nvidia.com/gpu.product": selector["nvidia.com/gpu.product"]}
    workloads = [m for m in k8s_manifests(spec) if m["kind"] in ("Deployment", "LeaderWorkerSet")]
    for m, lay in zip(workloads, spec.layouts()):
        for node_role, tpl in pod_templates(m):
            pod = tpl["spec"]
            (c,) = pod["containers"]
            assert c["resources"]["requests"][resource] == str(lay.gpus_per_pod)
            assert c["resources"]["limits"] == c["resources"]["requests"]
            assert pod["nodeSelector"] == selector
            shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
            assert shm["emptyDir"]["medium"] == "Memory"
            assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
            if node_role == "leader":
                assert c["readinessProbe"]["httpGet"]["path"] == "/v1/models"
                assert c["livenessProbe"]["httpGet"]["path"] == "/health"
                assert c["startupProbe"]["failureThreshold"] * c["startupProbe"]["periodSeconds"] >= 1200
                assert tpl["metadata"]["labels"][NODE_ROLE] == "leader"
            else:
                assert "readinessProbe" not in c


def test_container_runs_the_engine_command(spec: DeploySpec) -> None:
    for m in k8s_manifests(spec):
        if m["kind"] not in ("Deployment", "LeaderWorkerSet"):
            continue
        for node_role, tpl in pod_templates(m):
            (c,) = tpl["spec"]["containers"]
            argv = expand_env(c["command"] + c["args"])
            if argv[:2] == ["sh", "-c"]:            # vllm-router installed at start: sh -c SCRIPT argv...
                assert "vllm-router==" in argv[2]
                argv = argv[3:]
            component = m["metadata"]["labels"]["app.kubernetes.io/component"]
            name = f"{spec.engine}_router" if component == "router" else spec.engine
            ns = parse(load_table(name), argv)
            if node_role == "worker":
                assert ns.node_rank == 1
            if component != "router" and node_role == "leader" and "--nnodes" in argv:
                assert ns.node_rank == 0


def test_services_select_leader_pods(spec: DeploySpec) -> None:
    manifests = k8s_manifests(spec)
    services = [m for m in manifests if m["kind"] == "Service"]
    workloads = [m for m in manifests if m["kind"] in ("Deployment", "LeaderWorkerSet")]
    assert len(services) == len(workloads)
    for svc, wl in zip(services, workloads):
        leader_labels = pod_templates(wl)[0][1]["metadata"]["labels"]
        assert svc["spec"]["selector"].items() <= leader_labels.items()
        assert svc["spec"]["ports"][0]["port"] == spec.port


def test_pd_sglang_router_discovers_leader_pods() -> None:
    spec = make_spec("pd_moe_mooncake", "sglang")
    manifests = k8s_manifests(spec, namespace="llm")
    kinds = [m["kind"] for m in manifests]
    assert kinds.count("LeaderWorkerSet") == 1 and {"ServiceAccount", "Role", "RoleBinding"} <= set(kinds)
    router = next(m for m in manifests if m["kind"] == "Deployment"
              and m["metadata"]["labels"]["app.kubernetes.io/component"] == "router")
    pod = router["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == router["metadata"]["name"] and "nodeSelector" not in pod
    ns = parse(load_table("sglang_router"), pod["containers"][0]["command"] + pod["containers"][0]["args"])
    assert ns.service_discovery and ns.service_discovery_namespace == "llm"
    prefill = next(m for m in manifests if m["metadata"]["labels"]["app.kubernetes.io/component"] == "prefill"
               and m["kind"] == "Deployment")
    labels = prefill["spec"]["template"]["metadata"]["labels"]
    assert all(f"{k}={v}" in ns.prefill_selector for k, v in labels.items()
               if k in ("app.kubernetes.io/component", NODE_ROLE))
    assert prefill["spec"]["template"]["metadata"]["annotations"]["sglang.ai/bootstrap-port"] == "8998"
    public = [m for m in manifests if m["kind"] == "Service" and m["metadata"]["name"] == "deepseek-v3-sglang"]
    assert public and public[0]["spec"]["selector"]["app.kubernetes.io/component"] == "router"


def test_pd_vllm_router_discovers_role_pods() -> None:
    manifests = k8s_manifests(make_spec("pd_nixl", "vllm"), namespace="llm")
    assert sorted(m["metadata"]["name"] for m in manifests if m["kind"] == "Service") == [
        "qwen3-32b-vllm", "qwen3-32b-vllm-decode", "qwen3-32b-vllm-prefill"]
    router = next(m for m in manifests if m["kind"] == "Deployment"
                  and m["metadata"]["labels"]["app.kubernetes.io/component"] == "router")
    (c,) = router["spec"]["template"]["spec"]["containers"]
    ns = parse(load_table("vllm_router"), (c["command"] + c["args"])[3:])
    assert ns.vllm_pd_disaggregation and ns.kv_connector == "nixl" and ns.service_discovery
    assert ns.service_discovery_namespace == "llm" and ns.service_discovery_port == 8000


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


@pytest.mark.parametrize("case", ["pd_nixl", "pd_moe_mooncake", "dense_dp4_tp2", "tp8_pp2_multinode"])
@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_services_and_router_reach_the_right_pods(case: str, engine: str) -> None:
    """Follow every Service selector (loaded through the official client) and the router's discovery
    selectors to the pods they reach: each role's Service reaches that role's serving pods and nothing
    else; the public endpoint reaches the router (P/D) or the serving pods; the router finds both pools."""
    spec = make_spec(case, engine)
    manifests = k8s_manifests(spec, namespace="llm")
    pods = []                                    # (workload name, component, node role, labels)
    for m in manifests:
        if m["kind"] in ("Deployment", "LeaderWorkerSet"):
            for node_role, tpl in pod_templates(m):
                meta = load(tpl, "V1PodTemplateSpec").metadata
                pods.append((m["metadata"]["name"], meta.labels["app.kubernetes.io/component"], node_role,
                             meta.labels))
    services = [load(m, "V1Service") for m in manifests if m["kind"] == "Service"]
    for svc in services:
        reached = [p for p in pods if _selects(svc.spec.selector, p[3])]
        assert reached, f"Service {svc.metadata.name} selects no pod"
        components = {p[1] for p in reached}
        assert len(components) == 1 and all(p[2] == "leader" for p in reached), (svc.metadata.name, reached)
        assert svc.spec.ports[0].target_port == "http"
    public = next(s for s in services if s.metadata.name == k8s_manifests(spec)[0]["metadata"]["labels"][
        "app.kubernetes.io/name"])
    reached = {p[1] for p in pods if _selects(public.spec.selector, p[3])}
    assert reached == ({"router"} if spec.disaggregated is not None else {"serve"})
    if spec.disaggregated is not None:
        router = next(m for m in manifests if m["kind"] == "Deployment"
                      and m["metadata"]["labels"]["app.kubernetes.io/component"] == "router")
        (c,) = router["spec"]["template"]["spec"]["containers"]
        argv = c["command"] + c["args"]
        argv = argv[3:] if argv[:2] == ["sh", "-c"] else argv
        ns = parse(load_table(f"{engine}_router"), argv)
        for side in ("prefill", "decode"):
            sel = dict(kv.split("=", 1) for kv in getattr(ns, f"{side}_selector"))
            found = {(p[1], p[2]) for p in pods if _selects(sel, p[3])}
            assert found == {(side, "leader")}


def test_to_yaml_round_trips_without_aliases(spec: DeploySpec) -> None:
    manifests = k8s_manifests(spec)
    text = to_yaml(manifests)
    assert "&id" not in text and "*id" not in text
    assert list(yaml.safe_load_all(text)) == manifests


def test_vendor_resources_and_overrides() -> None:
    amd = DeploySpec(model_id="m/m", chip_id="mi300x-192gb", engine="vllm", tp=8, max_model_len=4096)
    with pytest.raises(DeployError, match="image: no default vllm image for amd"):
        k8s_manifests(amd)
    (dep, _) = k8s_manifests(amd, image="rocm/vllm:latest")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["limits"] == {"amd.com/gpu": "8"} and c["image"] == "rocm/vllm:latest"
    assert dep["spec"]["template"]["spec"]["nodeSelector"] == {
        "amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM"}
    ascend = DeploySpec(model_id="m/m", chip_id="ascend-910b-64gb", engine="sglang", tp=8,
                        max_model_len=4096)
    (dep, _) = k8s_manifests(ascend, image="example/sglang-npu:1", node_selector={"pool": "npu"})
    pod = dep["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["requests"] == {"huawei.com/Ascend910": "8"}
    assert pod["nodeSelector"] == {"pool": "npu"}
    with pytest.raises(DeployError, match="chip_id: 'tpu-v9'"):
        k8s_manifests(DeploySpec(model_id="m/m", chip_id="tpu-v9", engine="vllm", max_model_len=1))


def test_names_are_dns_safe(spec: DeploySpec) -> None:
    import re

    for m in k8s_manifests(spec, name="My_Model.v2"):
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", m["metadata"]["name"])
        assert len(m["metadata"]["name"]) <= 63
