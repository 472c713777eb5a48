"""What keeps one client from taking the service down: a body size and JSON nesting limit, NaN/Infinity
refused (they are not JSON numbers), and a bounded pool for the heavy endpoints (search, train, plan) that
answers 429 with Retry-After when its queue is full, so health and light endpoints stay responsive."""
from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 2_000_000      # a scenario with a large inventory fits; a 10 MB string does not
MAX_DEPTH = 32                  # JSON nesting
HEAVY_ACTIVE = 2                # heavy requests computing at once (one per core of a small server)
HEAVY_QUEUE = 8                 # heavy requests waiting; more get 429
RETRY_AFTER_S = 2


def _depth(obj: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value, stopping once it passes `limit`."""
    stack, deepest = [(obj, 1)], 0
    while stack:
        o, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(o, dict):
            stack.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            stack.extend((v, d + 1) for v in o)
    return deepest


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; send a finite number")


class BodyLimits:
    """ASGI middleware: 413 above MAX_BODY_BYTES, 422 for NaN/Infinity or nesting deeper than MAX_DEPTH."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            await _reply(send, 413, f"request body over {MAX_BODY_BYTES:,} bytes")
            return
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
            if len(body) > MAX_BODY_BYTES:
                await _reply(send, 413, f"request body over {MAX_BODY_BYTES:,} bytes")
                return
        if body and b"json" in headers.get(b"content-type", b"json"):
            try:
                doc = json.loads(body, parse_constant=_no_constants)
            except ValueError as exc:
                await _reply(send, 422, f"body is not valid JSON: {exc}")
                return
            if _depth(doc, MAX_DEPTH) > MAX_DEPTH:
                await _reply(send, 422, f"JSON nested deeper than {MAX_DEPTH} levels")
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(send: Send, status: int, message: str) -> None:
    payload = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


class HeavyPool:
    """At most HEAVY_ACTIVE heavy requests run, HEAVY_QUEUE wait; the next gets 429 with Retry-After."""

    def __init__(self, active: int = HEAVY_ACTIVE, queue: int = HEAVY_QUEUE) -> None:
        self.active, self.queue = active, queue
        self._sem: asyncio.Semaphore | None = None
        self._inside = 0

    async def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from starlette.concurrency import run_in_threadpool
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.active)
        if self._inside >= self.active + self.queue:
            raise HTTPException(status_code=429, detail="busy: too many search/train/plan requests at once; "
                                                        f"retry in {RETRY_AFTER_S} s",
                                headers={"Retry-After": str(RETRY_AFTER_S)})
        self._inside += 1
        try:
            async with self._sem:
                return await run_in_threadpool(fn, *args, **kwargs)
        finally:
            self._inside -= 1
