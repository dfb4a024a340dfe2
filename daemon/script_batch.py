"""Coalesce calls of one Lua script into pipelines: one Redis round trip per loop turn.

Under load the router runs many webhook requests at once, and each one appends its
update with one script call. Called one by one, every call takes a pooled connection,
writes, waits and reads on its own; here the calls made during one event-loop turn go
to Redis as one pipeline (one write, replies read back in order), which costs the
daemon less CPU per call and Redis fewer reads. A lone call goes out on the
next loop turn (one turn later than a call of its own would).

The pipeline is not a transaction: each script is atomic on its own (as before),
and a failed round trip fails every call in it, which the caller treats exactly as
a failed single call (the router answers 503; Telegram's retry is deduplicated by
the script itself). Scripts reach Redis by EVALSHA; after a restart (the script
cache is empty) the script is loaded again and only the calls refused with NOSCRIPT
are sent again: they did not run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from daemon.tasks import log_if_failed

log = logging.getLogger(__name__)

MAX_BATCH = 256
"""Calls per pipeline; a bigger turn is split (bounded reply buffers)."""

Call = tuple[Sequence[Any], Sequence[Any], "asyncio.Future[Any]"]
FollowUp = Callable[[Any, Sequence[Any], Sequence[Any]], None]
"""Queues one more command on the pipeline right after a call's script (same keys/args)."""


class ScriptBatcher:
    def __init__(
        self, redis: aioredis.Redis, script: str, follow_up: FollowUp | None = None
    ) -> None:
        self.redis = redis
        self._script = redis.register_script(script)
        # Runs after its script on the same connection, in order; its reply is dropped
        # (a failed round trip still fails the call).
        self._follow_up = follow_up
        self._queue: list[Call] = []
        self._scheduled = False
        self._flushes: set[asyncio.Task[None]] = set()
        self.round_trips = 0
        """Pipelines sent (tests and benchmarks look at it)."""

    async def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((keys, args, future))
        if not self._scheduled:
            # The flush runs on the next loop turn: the calls made in this one join it.
            self._scheduled = True
            self._track(asyncio.create_task(self._flush(), name="script-batch"))
        return await future

    def _track(self, task: asyncio.Task[None]) -> None:
        self._flushes.add(task)
        task.add_done_callback(self._flush_done)

    async def _flush(self) -> None:
        self._scheduled = False
        queue, self._queue = self._queue, []
        chunks = [queue[start : start + MAX_BATCH] for start in range(0, len(queue), MAX_BATCH)]
        for chunk in chunks[1:]:
            self._track(asyncio.create_task(self._send(chunk), name="script-batch"))
        if chunks:
            await self._send(chunks[0])

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        log_if_failed(task, lambda: None)

    async def _send(self, calls: list[Call]) -> None:
        try:
            results = await self._execute(calls)
            refused = [n for n, r in enumerate(results) if isinstance(r, NoScriptError)]
            if refused:
                # Redis lost its script cache (a restart): the refused calls did not run.
                await self.redis.script_load(self._script.script)
                again = await self._execute([calls[n] for n in refused])
                for n, result in zip(refused, again, strict=True):
                    results[n] = result
        except asyncio.CancelledError:
            for _, _, future in calls:
                future.cancel()
            raise
        except Exception as exc:
            for _, _, future in calls:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), result in zip(calls, results, strict=True):
            if future.done():  # its caller was cancelled
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(self, calls: list[Call]) -> list[Any]:
        self.round_trips += 1
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in calls:
                pipe.evalsha(self._script.sha, len(keys), *keys, *args)
                if self._follow_up is not None:
                    self._follow_up(pipe, keys, args)
            results = list(await pipe.execute(raise_on_error=False))
        return results if self._follow_up is None else results[::2]
