"""Kubernetes manifests for a DeploySpec: Deployment or LeaderWorkerSet per role, plus Services.

* An instance that fits one node -> ``apps/v1`` Deployment (``replicas`` = instances) + Service.
* An instance spanning nodes -> ``leaderworkerset.x-k8s.io/v1`` LeaderWorkerSet (``size`` = nodes per
  instance, one pod per node) + Service on the leader pods. LWS injects LWS_LEADER_ADDRESS and
  LWS_WORKER_INDEX into every container; the engine args reference them as ``$(VAR)``, which the
  kubelet expands before the engine starts.
* Prefill/decode disaggregation -> one workload + Service per role, and the engine's router Deployment
  (sglang-router for SGLang, vllm-router for vLLM) finding the role pods by label (hence a
  ServiceAccount/Role/RoleBinding), behind the public Service named after the deployment. The router
  image: SGLang's own image carries sglang-router; vllm-router has no published image, so its container
  installs the pinned PyPI release at start (``router_image=`` replaces that with an image of your own).
* GPU resource name and node-selector label per vendor come from data/engines/k8s_accelerators.yaml.
* Probes hit the OpenAI-compatible server both engines run: readiness ``GET /v1/models``, liveness and
  startup ``GET /health`` (startup allows 30 min for weight loading). Only leader pods serve HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

import yaml

from .flags import DATA_DIR, load_table
from .placement import place, role_chip
from .sglang import BOOTSTRAP_PORT, sglang_command, sglang_router_command
from .spec import DeployError, DeploySpec, Layout
from .vllm import MOONCAKE_BOOTSTRAP_PORT, vllm_command, vllm_router_command

LWS_API = "leaderworkerset.x-k8s.io/v1"
LEADER_ADDR = "$(LWS_LEADER_ADDRESS)"
WORKER_INDEX = "$(LWS_WORKER_INDEX)"
MANAGED = {"app.kubernetes.io/managed-by": "stockpile"}
NODE_ROLE = "stockpile.dev/node-role"


@cache
def accelerator_table() -> dict[str, Any]:
    """data/engines/k8s_accelerators.yaml (vendors, default images, chips)."""
    return dict(yaml.safe_load((DATA_DIR / "k8s_accelerators.yaml").read_text()))


def accelerator(chip_id: str, node_selector: dict[str, str] | None = None) -> tuple[str, str, dict[str, str]]:
    """(vendor, GPU resource name, node selector) for a chip; ``node_selector`` overrides the label."""
    table = accelerator_table()
    chip = table["chips"].get(chip_id)
    if chip is None:
        raise DeployError(f"chip_id: {chip_id!r} has no Kubernetes entry; fix: add it to "
                          "data/engines/k8s_accelerators.yaml")
    vendor = table["vendors"][chip["vendor"]]
    selector = node_selector if node_selector is not None else {vendor["node_label"]: chip["label"]}
    return chip["vendor"], vendor["resource"], dict(selector)


def engine_image(chip_id: str, engine: str, image: str | None = None) -> str:
    """`image`, else the vendor's default build of `engine` for this chip (k8s_accelerators.yaml images)."""
    if image:
        return image
    table = accelerator_table()
    vendor = (table["chips"].get(chip_id) or {}).get("vendor")
    found = table.get("images", {}).get(vendor or "", {}).get(engine)
    if found is None:
        raise DeployError(f"image: no default {engine} image for {vendor or chip_id} accelerators; fix: pass "
                          "the vendor's build of the engine (--image, or image=)")
    return str(found)


def _slug(text: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:limit].rstrip("-") or "model"


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period,
            "timeoutSeconds": 5, "failureThreshold": failures}


def _container(argv: list[str], image: str, resource: str | None, gpus: int, port: int,
               serves_http: bool, router: bool = False) -> dict[str, Any]:
    """The engine container: command = launcher, args = the rest of the engine argv."""
    c: dict[str, Any] = {"name": "router" if router else "engine", "image": image,
                         "command": argv[:1], "args": argv[1:],
                         "ports": [{"name": "http", "containerPort": port}]}
    if resource:
        c["resources"] = {"requests": {resource: str(gpus)}, "limits": {resource: str(gpus)}}
        c["env"] = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": "hf-token", "key": "token", "optional": True}}}]
        c["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    if serves_http:
        ready, live = ("/readiness", "/liveness") if router else ("/v1/models", "/health")
        c["readinessProbe"] = _probe(ready, 10, 3)
        c["livenessProbe"] = _probe(live, 30, 5)
        c["startupProbe"] = _probe(live, 10, 180)
    return c


def _pod(container: dict[str, Any], selector: dict[str, str] | None, shm_size: str,
         labels: dict[str, str], annotations: dict[str, str] | None = None,
         account: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [container]}
    if selector is not None:
        spec["nodeSelector"] = dict(selector)
        spec["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}}]
    if account:
        spec["serviceAccountName"] = account
    meta: dict[str, Any] = {"labels": labels}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": spec}


def _service(name: str, ns: str, labels: dict[str, str], selector: dict[str, str], port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns,
            "labels": labels}, "spec": {"type": "ClusterIP", "selector": selector,
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]}}


def _role_manifests(spec: DeploySpec, lay: Layout, base: str, ns: str, image: str, resource: str,
                    selector: dict[str, str], shm_size: str,
                    command: Callable[..., list[str]]) -> list[dict[str, Any]]:
    name = base if lay.role == "serve" else f"{base}-{lay.role}"
    labels = {"app.kubernetes.io/name": base, "app.kubernetes.io/component": lay.role, **MANAGED}
    leader = {**labels, NODE_ROLE: "leader"}
    role = None if lay.role == "serve" else lay.role
    notes = None
    if lay.role == "prefill" and spec.engine == "sglang":
        notes = {"sglang.ai/bootstrap-port": str(BOOTSTRAP_PORT)}
    elif lay.role == "prefill" and spec.disaggregated is not None and spec.disaggregated.kv_transfer == "mooncake":
        notes = {"vllm.ai/bootstrap-port": str(MOONCAKE_BOOTSTRAP_PORT)}
    meta = {"name": name, "namespace": ns, "labels": labels}
    if lay.nodes == 1:
        pod = _pod(_container(command(spec, role), image, resource, lay.gpus, spec.port, True),
                   selector, shm_size, leader, notes)
        workload: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                                    "spec": {"replicas": lay.instances, "selector": {"matchLabels": leader},
                                             "template": pod}}
    else:
        lead_argv = command(spec, role, 0, LEADER_ADDR)
        work_argv = command(spec, role, WORKER_INDEX, LEADER_ADDR)
        lead = _pod(_container(lead_argv, image, resource, lay.gpus_per_pod, spec.port, True),
                    selector, shm_size, leader, notes)
        work = _pod(_container(work_argv, image, resource, lay.gpus_per_pod, spec.port, False),
                    selector, shm_size, {**labels, NODE_ROLE: "worker"})
        workload = {"apiVersion": LWS_API, "kind": "LeaderWorkerSet", "metadata": meta, "spec": {
            "replicas": lay.instances, "startupPolicy": "LeaderCreated",
            "leaderWorkerTemplate": {"size": lay.nodes, "restartPolicy": "RecreateGroupOnPodRestart",
                                     "leaderTemplate": lead, "workerTemplate": work}}}
    return [workload, _service(name, ns, labels, leader, spec.port)]


def _router_manifests(spec: DeploySpec, base: str, ns: str, image: str | None) -> list[dict[str, Any]]:
    """The engine's router in PD mode discovering prefill/decode leader pods by label."""
    name = f"{base}-router"
    labels = {"app.kubernetes.io/name": base, "app.kubernetes.io/component": "router", **MANAGED}
    pick = {r: {"app.kubernetes.io/name": base, "app.kubernetes.io/component": r, NODE_ROLE: "leader"}
            for r in ("prefill", "decode")}
    found: dict[str, object] = {"namespace": ns, **pick}
    if spec.engine == "sglang":
        argv = sglang_router_command(spec, discovery=found)
        assert image is not None
    else:
        argv = vllm_router_command(spec, place(spec), discovery=found)
        if image is None:           # no published image: install the pinned router release at start
            version = load_table("vllm_router").version
            argv = ["sh", "-c", f"pip install --no-cache-dir vllm-router=={version} && exec \"$0\" \"$@\"",
                    *argv]
            image = "python:3.12-slim"
    meta = {"name": name, "namespace": ns, "labels": labels}
    rbac: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}],
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}}]
    pod = _pod(_container(argv, image, None, 0, spec.port, True, router=True), None, "", labels,
               account=name)
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
              "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": pod}}
    return [*rbac, deploy, _service(base, ns, labels, labels, spec.port)]


def k8s_manifests(spec: DeploySpec, image: str | None = None, namespace: str = "default", *,
                  name: str | None = None, node_selector: dict[str, str] | None = None,
                  shm_size: str = "16Gi", router_image: str | None = None) -> list[dict[str, Any]]:
    """Manifests (plain dicts, apply order) that run ``spec`` on a cluster.

    ``image`` defaults per vendor/engine from k8s_accelerators.yaml (NVIDIA only); ``name`` defaults
    to a slug of model and engine; ``node_selector`` replaces the chip's label selector;
    ``router_image`` replaces the P/D router's image (default: the engine image for SGLang, a Python
    image installing the pinned vllm-router for vLLM).
    """
    base = _slug(name or f"{spec.model_id.split('/')[-1]}-{spec.engine}")
    command = vllm_command if spec.engine == "vllm" else sglang_command
    out: list[dict[str, Any]] = []
    for lay in spec.layouts():
        # each pool on its own chip's nodes: a mixed pair's prefill role names its chip
        _, resource, selector = accelerator(role_chip(spec, lay), node_selector)
        role_image = engine_image(role_chip(spec, lay), spec.engine, image)
        out += _role_manifests(spec, lay, base, namespace, role_image, resource, selector, shm_size, command)
        if lay.role != "prefill" and spec.engine == "sglang":
            router_image = router_image or role_image    # beside the deployment's own chip's pool
    if spec.disaggregated is not None:
        out += _router_manifests(spec, base, namespace, router_image)
    return out


class _NoAliasDumper(yaml.SafeDumper):
    """Writes repeated sub-objects out in full instead of as YAML anchors/aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(manifests: list[dict[str, Any]]) -> str:
    """Multi-document YAML (``kubectl apply -f -`` ready)."""
    return yaml.dump_all(manifests, Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False)
