"""Long polling: a tenant's updates fetched with ``getUpdates`` instead of a webhook.

For deployments without a public HTTPS URL (laptops, private clusters). For each tenant whose
ingress is ``polling``, every replica runs one task that campaigns for the tenant's poll lease
(a Coordination lock, kept alive by ``Coordination.keep_alive``); the holder is the bot's only
``getUpdates`` consumer. Per batch:

1. ``getUpdates(offset)``: the offset confirms to Telegram every update below it;
2. each update is appended to the tenant's buffer (deduplicated by ``update_id``) and
   delivery is told, exactly as the router does: a sleeping tenant is woken by it;
3. only then the offset moves to the last ``update_id`` + 1, in Redis, fenced on the lease
   token, and the next ``getUpdates`` sends it.

A replica killed between 2 and 3 leaves the offset behind: the next holder fetches the same
updates again and the buffer drops them as duplicates. Nothing is confirmed to Telegram before
it is in the buffer, so nothing is lost either.

Answers that are not updates:

- 409 "can't use getUpdates method while webhook is active": a webhook is set (left over, or
  set by another program: the agent's own ``setWebhook`` stops at the Bot API relay,
  model_gateway/bot_api_relay.py). If the tenant still polls, the webhook is deleted
  (``drop_pending_updates=False``: Telegram keeps what it holds) and polling goes on.
- 409 "terminated by other getUpdates request": another consumer polls the same bot (another
  program with the same token): logged, retried with backoff.
- 401: the bot token is refused. The tenant is marked ``failed`` with the reason (once it is
  not running) and its poller stops; no retry loop until an operator fixes the token and
  resumes the tenant.
- anything else (network, 5xx, 429): retried with capped exponential backoff.

Pollers run for every polling tenant that has a bot token and is not ``failed``; a tenant
event (created, updated, resumed, failed, deleted) makes each replica look at the tenant
again, and a slow sweep catches events missed across a Redis reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from daemon.cancellation import cancel_and_wait
from daemon.coordination import Coordination
from daemon.crash_points import crash_point
from daemon.metrics import Metrics
from daemon.model import IngressKind, Tenant, TenantNotFound, TenantStatus
from daemon.msgpath.buffer import Buffer
from daemon.msgpath.delivery import backoff_delay
from daemon.ports import Registry
from daemon.redis_keys import lock_key, poll_lease_name, poll_offset_key
from daemon.tasks import log_if_failed, repeat_forever
from daemon.telegram import BotApi, BotApiError

log = logging.getLogger(__name__)

LEASE_TTL_S = 5.0
"""Renewed every third of it; a killed holder stops its tenant's polling at most this long."""
SWEEP_S = 60.0
"""Safety net for missed tenant events; pollers normally start and stop on events."""
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
EVENTS = frozenset({"created", "updated", "resumed", "failed", "deleted", "suspended"})
"""Tenant events after which a replica looks at the tenant's poller again."""
TOKEN_REFUSED = (
    "Telegram refused the bot token (401 Unauthorized) to getUpdates; set a valid one with "
    "`otm tenant update {tenant_id} --bot-token-file FILE`, then `otm tenant resume {tenant_id}`"
)

# KEYS: offsets hash, lease   ARGV: lease token, bot id, next offset
# Fenced: a holder that lost its lease never moves the offset. Never moves it back.
COMMIT_OFFSET_LUA = """
if redis.call('get', KEYS[2]) ~= ARGV[1] then return 0 end
local current = tonumber(redis.call('hget', KEYS[1], ARGV[2]) or '0')
if tonumber(ARGV[3]) > current then redis.call('hset', KEYS[1], ARGV[2], ARGV[3]) end
return 1
"""


def bot_id(bot_token: str) -> str:
    """The public numeric prefix of a token (``123:AAE...`` → ``123``): never the secret."""
    return bot_token.split(":", 1)[0]


def update_id_of(update: Any) -> int | None:
    value = update.get("update_id") if isinstance(update, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class _LeaseLost(Exception):
    """The poll lease went to another replica: stop polling, campaign again."""


@dataclass(eq=False, kw_only=True)
class PollerManager:
    """One campaigning task per polling tenant on this replica; the lease holder polls."""

    registry: Registry
    buffer: Buffer
    coordination: Coordination
    bot_api: BotApi
    notify: Callable[[str], None]
    metrics: Metrics
    default_ingress: IngressKind
    poll_timeout_s: int
    lease_ttl_s: float = LEASE_TTL_S

    def __post_init__(self) -> None:
        self._pollers: dict[str, tuple[str, asyncio.Task[None]]] = {}
        """tenant id → (bot token it polls with, its campaigning task)."""
        self._checks: set[asyncio.Task[None]] = set()
        self._commit = self.coordination.redis.register_script(COMMIT_OFFSET_LUA)
        self._closing = False

    @property
    def polling(self) -> list[str]:
        """Tenants this replica runs a poller task for (holding the lease or waiting)."""
        return sorted(self._pollers)

    def wants(self, tenant: Tenant) -> bool:
        return (
            tenant.ingress_mode(self.default_ingress) == "polling"
            and bool(tenant.bot_token)
            and tenant.status not in (TenantStatus.FAILED, TenantStatus.DELETED)
        )

    # -- which tenants poll ----------------------------------------------------------
    async def sync(self) -> None:
        """Start and stop pollers to match the registry.

        Page by page: one page of records in memory, whatever the registry's size; the
        only thing kept across pages is which of this replica's pollers were seen."""
        before = set(self._pollers)
        seen: set[str] = set()
        async for page in self.registry.scan():
            for tenant in page:
                if tenant.tenant_id in before:
                    seen.add(tenant.tenant_id)
                await self._apply(tenant)
        # Gone from the registry (a poller an event started meanwhile is not in `before`).
        for tenant_id in before - seen:
            await self._stop(tenant_id)

    async def sync_forever(self) -> None:
        await repeat_forever(self.sync, SWEEP_S, "poller sweep")

    def on_event(self, tenant_id: str, event: dict[str, Any]) -> None:
        if event.get("kind") in EVENTS:
            self._spawn_check(self._reconsider(tenant_id), f"poller-check:{tenant_id}")

    def request_sync(self) -> None:
        """Events may have been missed (pub/sub reconnected): look at every tenant again."""
        self._spawn_check(self.sync(), "poller-sync-once")

    def _spawn_check(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        if self._closing:
            coro.close()
            return
        task = asyncio.create_task(coro, name=name)
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        log_if_failed(task, self.metrics.background_task_failures.labels(task="poller").inc)

    async def _reconsider(self, tenant_id: str) -> None:
        try:
            tenant = await self.registry.get(tenant_id)
        except TenantNotFound:
            await self._stop(tenant_id)
            return
        await self._apply(tenant)

    async def _apply(self, tenant: Tenant) -> None:
        tenant_id = tenant.tenant_id
        current = self._pollers.get(tenant_id)
        if not self.wants(tenant):
            await self._stop(tenant_id)
            return
        if current is not None and current[0] == tenant.bot_token and not current[1].done():
            return
        await self._stop(tenant_id)  # a new token: poll with it from now on
        if self._closing:
            return
        task = asyncio.create_task(
            self._campaign(tenant_id, tenant.bot_token), name=f"poller:{tenant_id}"
        )
        task.add_done_callback(self._task_done)
        self._pollers[tenant_id] = (tenant.bot_token, task)
        log.info("long polling for %s started on this replica", tenant_id)

    async def _stop(self, tenant_id: str) -> None:
        entry = self._pollers.pop(tenant_id, None)
        if entry is not None:
            await cancel_and_wait([entry[1]], timeout=10)
            log.info("long polling for %s stopped on this replica", tenant_id)

    async def close(self) -> None:
        self._closing = True
        tasks = [task for _, task in self._pollers.values()] + list(self._checks)
        self._pollers.clear()
        stuck = await cancel_and_wait(tasks, timeout=10)
        for task in stuck:
            log.error("task %s did not stop", task.get_name())

    # -- one tenant ---------------------------------------------------------------------
    async def _campaign(self, tenant_id: str, bot_token: str) -> None:
        """Take the tenant's poll lease whenever it is free, poll while holding it."""
        name = poll_lease_name(tenant_id)
        failures = 0
        while True:
            try:
                lease = await self.coordination.acquire_lock(name, self.lease_ttl_s)
                if lease is None:
                    # Another replica polls; look again when its lease would expire.
                    pttl = await self.coordination.redis.pttl(lock_key(name))
                    await asyncio.sleep((pttl / 1000 if pttl > 0 else 0.1) + 0.05)
                    continue
            except (aioredis.RedisError, OSError) as exc:
                log.warning("poll lease of %s not taken: %s; retrying", tenant_id, exc)
                await asyncio.sleep(backoff_delay(failures, base=BACKOFF_BASE_S, cap=5.0))
                failures += 1
                continue
            failures = 0
            if await self._hold(tenant_id, bot_token, lease):
                return

    async def _hold(self, tenant_id: str, bot_token: str, lease: str) -> bool:
        """Poll under the lease until it is lost (False) or polling must end (True)."""
        name = poll_lease_name(tenant_id)
        released = asyncio.Event()
        polling = asyncio.create_task(
            self._poll(tenant_id, bot_token, lease), name=f"get-updates:{tenant_id}"
        )
        keeper = asyncio.create_task(
            self.coordination.keep_alive(name, lease, self.lease_ttl_s, released, polling.cancel),
            name=f"lease:{name}",
        )
        self.metrics.polling_tenants.inc()
        try:
            return await polling
        except _LeaseLost:
            log.warning("poll lease of %s lost; campaigning again", tenant_id)
            return False
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling() > 0:
                raise  # we are being stopped
            log.warning("poll lease of %s expired while polling; campaigning again", tenant_id)
            return False
        finally:
            self.metrics.polling_tenants.dec()
            released.set()
            await cancel_and_wait([polling, keeper], timeout=5)
            with contextlib.suppress(Exception):
                await self.coordination.release_lock(name, lease)

    async def _poll(self, tenant_id: str, bot_token: str, lease: str) -> bool:
        key = bot_id(bot_token)
        offset: int | None = None
        loaded = False
        failures = 0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not loaded:
                    stored = await self.coordination.redis.hget(poll_offset_key(tenant_id), key)
                    offset, loaded = (int(stored) if stored is not None else None), True
                started = loop.time()
                updates = await self.bot_api.get_updates(
                    bot_token, offset=offset, timeout_s=self.poll_timeout_s
                )
                failures = 0
                if updates:
                    offset = await self._take(tenant_id, key, lease, updates, offset)
                    continue
                if loop.time() - started >= self.poll_timeout_s / 2:
                    continue  # an ordinary empty long poll
                # Empty long before the poll's timeout: pause (as after an error), never spin.
            except BotApiError as exc:
                if exc.error_code == 401:
                    if await self._refused(tenant_id):
                        return True
                elif exc.error_code == 409 and "webhook" in exc.description.lower():
                    if not await self._delete_webhook(tenant_id, bot_token):
                        return True
                    if failures == 0:
                        failures += 1
                        continue  # deleted: poll again at once
                elif exc.error_code == 409:
                    log.warning(
                        "getUpdates of %s conflicts with another consumer of the same bot "
                        "(is another program polling with its token?)",
                        tenant_id,
                    )
                else:
                    log.warning("getUpdates of %s failed: %s", tenant_id, exc)
            except (aioredis.RedisError, OSError) as exc:
                # Not buffered, so not confirmed: the same updates come again.
                log.warning("updates of %s not buffered: %s; fetching them again", tenant_id, exc)
            await asyncio.sleep(backoff_delay(failures, base=BACKOFF_BASE_S, cap=BACKOFF_CAP_S))
            failures += 1

    async def _take(
        self, tenant_id: str, key: str, lease: str, updates: list[Any], offset: int | None
    ) -> int | None:
        """Buffer a batch, then commit the offset past it; returns the new offset."""
        last = offset - 1 if offset is not None else None
        for update in updates:
            update_id = update_id_of(update)
            if update_id is None:
                log.warning("an update of %s has no integer update_id; skipped", tenant_id)
                continue
            body = json.dumps(update, separators=(",", ":"), ensure_ascii=False).encode()
            result = await self.buffer.append(tenant_id, update_id, body)
            if result.added:
                self.metrics.updates_buffered.inc()
                self.metrics.set_buffered(tenant_id, result.length)
            else:
                self.metrics.updates_duplicate.inc()
            last = update_id if last is None else max(last, update_id)
        if last is None:
            return offset
        # Duplicates too: refetched after a failover, they may be buffered but undelivered
        # (the previous holder died before its delivery worker started).
        self.notify(tenant_id)
        crash_point("poll-buffered")
        # Only now, with every update of the batch in the buffer, may Telegram forget them.
        committed = await self._commit(
            keys=[poll_offset_key(tenant_id), lock_key(poll_lease_name(tenant_id))],
            args=[lease, key, last + 1],
        )
        if not committed:
            raise _LeaseLost
        return last + 1

    async def _delete_webhook(self, tenant_id: str, bot_token: str) -> bool:
        """Remove a webhook that blocks polling, if the tenant still polls (False: it does not;
        its webhook is wanted)."""
        try:
            tenant = await self.registry.get(tenant_id)
        except TenantNotFound:
            return False
        except Exception as exc:  # registry unreachable: keep polling, look again later
            log.warning("cannot look up %s: %s", tenant_id, exc)
            return True
        if not self.wants(tenant) or tenant.bot_token != bot_token:
            return False
        log.info("deleting the webhook of %s: it polls for updates", tenant_id)
        try:
            await self.bot_api.delete_webhook(bot_token)
        except BotApiError as exc:
            log.warning("deleteWebhook for %s failed: %s", tenant_id, exc)
        return True

    async def _refused(self, tenant_id: str) -> bool:
        """The bot token was refused: mark the tenant failed once it is not running.
        True when polling stops (marked, or the tenant is gone)."""
        reason = TOKEN_REFUSED.format(tenant_id=tenant_id)
        log.error("%s: %s", tenant_id, reason)
        try:
            await self.registry.update(
                tenant_id,
                if_status={TenantStatus.IDLE, TenantStatus.SUSPENDED},
                status=TenantStatus.FAILED,
                status_reason=reason,
            )
        except TenantNotFound:
            return True
        except Exception as exc:
            # Running or waking: its agent fails on the same token; mark it once it is down.
            log.warning("%s not marked failed yet: %s", tenant_id, exc)
            return False
        await self.coordination.publish_event(tenant_id, "failed", reason=reason)
        return True
