"""Where each process of a deployment runs: its host, its devices and its ports.

Instances are packed onto hosts of ``gpus_per_node`` devices, first fit, role after role (prefill before
decode, so a small 1P1D pair shares one host). An instance that fits a node gets a contiguous device set
on one host; one that spans nodes takes whole hosts. A mixed pair (prefill on another chip) packs each
pool onto hosts of its own chip.

Ports: one HTTP port per instance, distinct on a host. A deployment of several instances (replicas, or a
prefill/decode split) gets a router in front on ``spec.port`` of the first host, and its instances count
up from ``spec.port + 1``; a single instance serves on ``spec.port`` itself. ``index`` (instances placed
before this one on its host) offsets the engines' secondary ports (bootstrap and side-channel ports), which
would otherwise collide between co-located instances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import yaml

from .flags import DATA_DIR
from .spec import DeploySpec, Layout


@dataclass(frozen=True)
class Slot:
    """One instance of a role: the hosts of its node ranks (leader first), devices on each, its port."""

    role: str
    instance: int
    hosts: tuple[str, ...]
    devices: tuple[int, ...]
    port: int
    index: int
    chip_id: str

    @property
    def nodes(self) -> int:
        return len(self.hosts)


@dataclass(frozen=True)
class Placement:
    """Every instance's slot, the router (host, port) when there is one, and the hosts in order."""

    slots: list[Slot]
    router: tuple[str, int] | None
    hosts: list[str] = field(default_factory=list)

    def role(self, name: str) -> list[Slot]:
        return [s for s in self.slots if s.role == name]


def needs_router(spec: DeploySpec) -> bool:
    """A prefill/decode split, or several replicas, needs one endpoint in front of its instances."""
    return spec.disaggregated is not None or spec.replicas > 1


def role_chip(spec: DeploySpec, lay: Layout) -> str:
    """The chip a role runs on (a mixed pair's prefill role names its own)."""
    if spec.disaggregated is not None and lay.role == "prefill" and spec.disaggregated.prefill.chip_id:
        return spec.disaggregated.prefill.chip_id
    return spec.chip_id


def place(spec: DeploySpec) -> Placement:
    """Pack every instance of ``spec`` onto hosts (see the module docstring for the rules)."""
    router = needs_router(spec)
    first_port = spec.port + 1 if router else spec.port
    gpn = spec.gpus_per_node
    mixed = len({role_chip(spec, lay) for lay in spec.layouts()}) > 1
    free: dict[str, int] = {}          # host -> next free device
    ports: dict[str, int] = {}         # host -> next free HTTP port
    placed: dict[str, int] = {}        # host -> instances placed on it
    pools: dict[str, list[str]] = {}   # chip -> its hosts, in order
    slots: list[Slot] = []

    def new_host(chip: str, lay: Layout) -> str:
        pool = pools.setdefault(chip, [])
        prefix = f"{lay.role}-node" if mixed and chip != spec.chip_id else "node"
        name = f"{prefix}-{len(pool)}"
        pool.append(name)
        free[name], ports[name], placed[name] = 0, first_port, 0
        return name

    for lay in spec.layouts():
        chip = role_chip(spec, lay)
        for i in range(lay.instances):
            if lay.gpus >= gpn:                      # whole nodes (check_layout: a multiple of gpn)
                hosts = tuple(new_host(chip, lay) for _ in range(lay.nodes))
                for h in hosts:
                    free[h] = gpn
                devices = tuple(range(gpn))
            else:
                pool = pools.get(chip, [])
                host = pool[-1] if pool and gpn - free[pool[-1]] >= lay.gpus else new_host(chip, lay)
                devices = tuple(range(free[host], free[host] + lay.gpus))
                free[host] += lay.gpus
                hosts = (host,)
            lead = hosts[0]
            slots.append(Slot(lay.role, i, hosts, devices, ports[lead], placed[lead], chip))
            ports[lead] += 1
            placed[lead] += 1
    order = [h for chip in pools for h in pools[chip]]
    # the router sits on the deployment's own chip's first host (the decode pool of a mixed pair)
    router_at = (pools[spec.chip_id][0], spec.port) if router else None
    return Placement(slots, router_at, order)


@cache
def _devices_table() -> dict[str, Any]:
    return dict(yaml.safe_load((DATA_DIR / "devices.yaml").read_text())["vendors"])


def chip_vendor(chip_id: str) -> str | None:
    """The catalog vendor of a chip (user chip files included), or None for a chip the catalog lacks."""
    from stockpile.catalog.chips import get_chip
    from stockpile.errors import StockpileError
    try:
        return get_chip(chip_id).vendor
    except (StockpileError, KeyError, ValueError):
        return None


def visible_devices_variable(chip_id: str) -> str | None:
    """The environment variable that limits a process to some devices on this chip's hosts, if known."""
    vendor = chip_vendor(chip_id)
    entry = _devices_table().get(vendor or "")
    return entry["variable"] if entry else None


def device_env(slot: Slot) -> dict[str, str]:
    """``{VAR: "0,1,2,3"}``: the devices a slot holds on each of its hosts (empty when the vendor's
    variable is unknown)."""
    var = visible_devices_variable(slot.chip_id)
    if var is None:
        return {}
    return {var: ",".join(str(d) for d in slot.devices)}
