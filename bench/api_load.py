"""The REST API under load (issue 14): 200 concurrent clients against /api/estimate, then a flood of
/api/search, with the health check's latency measured meanwhile.

    .venv/bin/python bench/api_load.py [--clients 200] [--requests 2000] [--port 8765]

Starts `uvicorn stockpile.api.app:app` in a subprocess (one worker, keep-alive and backlog as `stockpile serve`), drives it with
httpx's async client, and prints requests/s, p50/p99 latency, errors by kind and the health latency.
Targets: no failed estimate; under the search flood only 429s (with Retry-After), no resets or 5xx; health
under 1 s.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections import Counter

import httpx

EST = {"model": "meta-llama/Llama-3.1-8B-Instruct", "chip": "h100-sxm-80gb", "isl": 1000, "osl": 200,
       "concurrency": 16}
SEARCH = {"model": "meta-llama/Llama-3.1-70B-Instruct", "chip": "h100-sxm-80gb", "gpus": 64, "isl": 1000,
          "osl": 200, "tpot_ms": 50}


def pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def flood(base: str, path: str, body: dict, clients: int, total: int) -> tuple[list[float], Counter, float]:
    lat: list[float] = []
    kinds: Counter = Counter()
    left = total
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def worker(c: httpx.AsyncClient) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t = time.perf_counter()
            try:
                r = await c.post(base + path, json=body, timeout=120)
                kinds[str(r.status_code) + (" (Retry-After)" if r.status_code == 429 and r.headers.get("retry-after")
                                            else "")] += 1
            except httpx.HTTPError as exc:
                kinds[type(exc).__name__] += 1
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    async with httpx.AsyncClient(limits=limits) as c:
        await asyncio.gather(*(worker(c) for _ in range(clients)))
    return lat, kinds, time.perf_counter() - t0


async def health_probe(base: str, stop: asyncio.Event) -> list[float]:
    out: list[float] = []
    async with httpx.AsyncClient() as c:
        while not stop.is_set():
            t = time.perf_counter()
            try:
                await c.get(base + "/api/health", timeout=30)
            except httpx.HTTPError:
                out.append(float("inf"))
                continue
            out.append(time.perf_counter() - t)
            await asyncio.sleep(0.2)
    return out


async def phase(base: str, name: str, path: str, body: dict, clients: int, total: int) -> None:
    stop = asyncio.Event()
    probe = asyncio.create_task(health_probe(base, stop))
    lat, kinds, wall = await flood(base, path, body, clients, total)
    stop.set()
    health = await probe
    ok = kinds.get("200", 0)
    print(f"{name}: {total} requests from {clients} clients in {wall:.1f} s ({total / wall:.0f} req/s); "
          f"latency p50 {1e3 * statistics.median(lat):.0f} ms, p99 {1e3 * pct(lat, 0.99):.0f} ms; "
          f"outcomes {dict(kinds)}; 200s {ok}")
    print(f"  health meanwhile: {len(health)} probes, p50 {1e3 * statistics.median(health):.0f} ms, "
          f"max {1e3 * max(health):.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    srv = subprocess.Popen([sys.executable, "-m", "uvicorn", "stockpile.api.app:app", "--port", str(args.port),
                            "--timeout-keep-alive", "30", "--backlog", "4096",
                            "--log-level", "warning"])
    try:
        for _ in range(100):
            try:
                httpx.get(base + "/api/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        asyncio.run(phase(base, "estimate", "/api/estimate", EST, args.clients, args.requests))
        asyncio.run(phase(base, "search flood", "/api/search", SEARCH, args.clients, max(args.clients, 400)))
    finally:
        srv.terminate()
        srv.wait(timeout=10)


if __name__ == "__main__":
    main()
