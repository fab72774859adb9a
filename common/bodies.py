"""Request bodies bounded before anyone reads them, and JSON bodies held to the standard. A size limit
checked in a route, or after the token, comes too late: the body is in memory by then. And Python's JSON
parser accepts NaN, Infinity and lone surrogates, which no database or client can take: they get a 422
here instead of a 500 somewhere later."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.problems import problem

DEFAULT_LIMIT = 1 << 20  # 1 MiB


class BoundedBodies:
    """ASGI middleware: a body over its limit is refused with 413 (by Content-Length at once, else as soon
    as the bytes read pass it); a JSON body that is not strict JSON with 422. `limits` gives larger ones to
    path prefixes that take uploads."""

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_LIMIT, limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.limits = dict(limits or {})

    def _limit_for(self, path: str) -> int:
        return max((n for prefix, n in self.limits.items() if path.startswith(prefix)), default=self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope["path"])
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._refuse(scope, send, 413, f"the request body is larger than {limit} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, send, 413, f"the request body is larger than {limit} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        media = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if body and (media == b"application/json" or media.endswith(b"+json")):
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                await self._refuse(scope, send, 422, f"the body is not valid JSON: {exc}")
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(scope: Scope, send: Send, status: int, detail: str) -> None:
        response = problem(status, detail, headers={"Connection": "close"} if status == 413 else None)
        await response(scope, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}
