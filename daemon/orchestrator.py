"""Tenant lifecycle: create, update, delete, suspend/resume (wake/sleep live in
daemon/msgpath/wake.py). Every state change is a conditional registry write."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from daemon.coordination import Coordination
from daemon.model import (
    DETACHED,
    ConditionFailed,
    Tenant,
    TenantStatus,
    utcnow,
    validate_bot_token,
    validate_ingress,
    validate_labels,
    validate_tenant_id,
)
from daemon.model_gateway.keys import new_key_id
from daemon.msgpath.buffer import Buffer
from daemon.ports import Registry, Runtime, StateStore
from daemon.settings import Settings
from daemon.telegram import BotApi, webhook_url

log = logging.getLogger(__name__)

# Fields an operator may set on create/patch.
_CREATE_FIELDS = {"tenant_id", "bot_token", "idle_timeout_s", "image", "labels", "ingress"}
_PATCH_FIELDS = {"bot_token", "idle_timeout_s", "image", "labels", "ingress"}
SUSPEND_ATTEMPTS = 3
"""A suspend re-reads and retries when a wake or a PATCH moves the record under it."""


def _check_body(body: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    unknown = set(body) - allowed
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    out = dict(body)
    if "idle_timeout_s" in out and out["idle_timeout_s"] is not None:
        value = out["idle_timeout_s"]
        if isinstance(value, bool) or not isinstance(value, int) or not 30 <= value <= 7 * 86400:
            raise ValueError("idle_timeout_s must be an integer between 30 and 604800 (or null)")
    if "bot_token" in out:
        out["bot_token"] = validate_bot_token(out["bot_token"])
        if not out["bot_token"]:
            raise ValueError("bot_token must not be empty")
    if "image" in out and out["image"] is not None and not isinstance(out["image"], str):
        raise ValueError("image must be a string")
    if "labels" in out:
        out["labels"] = validate_labels(out["labels"])
    if "ingress" in out:
        out["ingress"] = validate_ingress(out["ingress"])
    return out


@dataclass(eq=False, kw_only=True)
class Orchestrator:
    settings: Settings
    registry: Registry
    state_store: StateStore
    runtime: Runtime
    coordination: Coordination
    bot_api: BotApi

    def webhook_url(self, tenant_id: str) -> str | None:
        base = self.settings.public_base_url
        return webhook_url(base, tenant_id) if base else None

    async def create_tenant(self, body: dict[str, Any]) -> Tenant:
        fields_ = _check_body(body, _CREATE_FIELDS)
        tenant_id = fields_.pop("tenant_id", None)
        if not isinstance(tenant_id, str):
            raise ValueError("tenant_id is required")
        validate_tenant_id(tenant_id)
        if not fields_.get("bot_token"):
            # A tenant without a bot can never receive a message: refuse it now rather
            # than let its first wake fail.
            raise ValueError("bot_token is required (the tenant's Telegram bot token)")
        # The tenant's model key is minted here (only its id is stored; model_gateway/keys.py).
        tenant = await self.registry.create(
            Tenant(tenant_id=tenant_id, model_key_id=new_key_id(), **fields_)
        )
        log.info("tenant %s created", tenant_id)
        await self.coordination.publish_event(tenant_id, "created", status=tenant.status.value)
        await self._set_ingress(tenant)
        return tenant

    async def _set_ingress(self, tenant: Tenant) -> None:
        """Tell Telegram how the tenant's updates come: a webhook to our router, or none
        (long polling: ``getUpdates`` refuses to run while a webhook is set)."""
        if self._polls(tenant):
            await self._delete_webhook(tenant)
        else:
            await self._register_webhook(tenant)

    async def _delete_webhook(self, tenant: Tenant) -> None:
        """Drop the bot's webhook (Telegram keeps the updates it holds for ``getUpdates``).
        A failure is logged, not fatal: the poller deletes a webhook in its way too."""
        if not tenant.bot_token:
            return
        try:
            await self.bot_api.delete_webhook(tenant.bot_token)
        except Exception as exc:
            log.warning("deleteWebhook for %s failed: %s", tenant.tenant_id, exc)

    async def _register_webhook(self, tenant: Tenant) -> None:
        """Point Telegram at our router, with the secret it must echo back.
        A failure is logged, not fatal: the operator can retry with a PATCH."""
        url = self.webhook_url(tenant.tenant_id)
        if url is None or not tenant.bot_token:
            return
        try:
            await self.bot_api.set_webhook(tenant.bot_token, url=url, secret=tenant.webhook_secret)
        except Exception as exc:
            log.warning("setWebhook for %s failed: %s", tenant.tenant_id, exc)
            await self.coordination.publish_event(
                tenant.tenant_id, "webhook_failed", reason=str(exc)
            )

    async def update_tenant(self, tenant_id: str, body: dict[str, Any]) -> Tenant:
        validate_tenant_id(tenant_id)
        changes = _check_body(body, _PATCH_FIELDS)
        if not changes:
            return await self.registry.get(tenant_id)
        before = await self.registry.get(tenant_id)
        tenant = await self.registry.update(tenant_id, **changes)
        # Telegram first, then the event: a poller started by the event finds no webhook.
        default = self.settings.ingress
        if "bot_token" in changes or before.ingress_mode(default) != tenant.ingress_mode(default):
            await self._set_ingress(tenant)
        await self.coordination.publish_event(tenant_id, "updated", fields=sorted(changes))
        return tenant

    async def delete_tenant(self, tenant_id: str) -> None:
        """Stop the agent, drop its state and record. The record goes last so
        a crash half-way leaves something an operator can delete again."""
        tenant = await self.registry.get(tenant_id)
        if tenant.status in (TenantStatus.RUNNING, TenantStatus.PROVISIONING):
            # Announce the stop, as suspend does: the reconciler must not take the
            # agent's exit for a crash and re-wake a tenant being deleted.
            with contextlib.suppress(ConditionFailed):
                tenant = await self.registry.update(
                    tenant_id, if_version=tenant.version, status=TenantStatus.STOPPING
                )
        await self.runtime.stop(tenant_id, grace_s=self.settings.agent_stop_grace_s)
        await self.coordination.delete_endpoint(tenant_id)
        # Buffered updates and dedupe markers go with the tenant (a re-created one
        # starts clean instead of dropping reused update_ids as duplicates).
        await Buffer(self.coordination.redis).purge(tenant_id)
        await self.state_store.delete_tenant(tenant_id)
        if tenant.bot_token and self.webhook_url(tenant_id) and not self._polls(tenant):
            try:
                await self.bot_api.delete_webhook(tenant.bot_token)
            except Exception as exc:
                log.warning("deleteWebhook for %s failed: %s", tenant_id, exc)
        await self.registry.delete(tenant_id)
        await self.coordination.publish_event(tenant_id, "deleted")
        await self.coordination.delete_event_log(tenant_id)
        log.info("tenant %s deleted", tenant_id)

    def _polls(self, tenant: Tenant) -> bool:
        return tenant.ingress_mode(self.settings.ingress) == "polling"

    async def suspend_tenant(self, tenant_id: str) -> Tenant:
        """Operator hold: messages keep buffering, the tenant is never woken.
        A running agent is stopped (with its final state sync) first."""
        for attempt in range(SUSPEND_ATTEMPTS):
            tenant = await self.registry.get(tenant_id)
            if tenant.status == TenantStatus.SUSPENDED:
                return tenant
            try:
                if tenant.status in (TenantStatus.RUNNING, TenantStatus.PROVISIONING):
                    tenant = await self.registry.update(
                        tenant_id, if_version=tenant.version, status=TenantStatus.STOPPING
                    )
                    await self.runtime.stop(tenant_id, grace_s=self.settings.agent_stop_grace_s)
                    await self.coordination.delete_endpoint(tenant_id)
                tenant = await self.registry.update(
                    tenant_id,
                    if_version=tenant.version,
                    status=TenantStatus.SUSPENDED,
                    status_reason="suspended by operator",
                    model_key_id=new_key_id(),  # the old key stays revoked after a resume
                    **DETACHED,
                )
                break
            except ConditionFailed:
                # Someone moved it meanwhile (e.g. a wake booted an agent): look again, and
                # stop what runs now, so a hold never leaves an agent running behind it.
                if attempt == SUSPEND_ATTEMPTS - 1:
                    raise
        await self.coordination.publish_event(tenant_id, "suspended")
        return tenant

    async def resume_tenant(self, tenant_id: str) -> Tenant:
        """Leave the hold (and a failed state); the next message (or a buffered one) wakes it."""
        tenant = await self.registry.update(
            tenant_id,
            if_status={TenantStatus.SUSPENDED, TenantStatus.FAILED},
            status=TenantStatus.IDLE,
            status_reason="",
            wake_attempts=0,
        )
        await self.coordination.publish_event(tenant_id, "resumed")
        return tenant

    async def rotate_model_key(self, tenant_id: str) -> Tenant:
        """A new model key: the old one is refused at once; a running agent gets the new one
        at its next wake (restart it with a sleep to switch now)."""
        tenant = await self.registry.update(tenant_id, model_key_id=new_key_id())
        await self.coordination.publish_event(tenant_id, "model_key_rotated")
        return tenant

    async def record_activity(self, tenant_id: str) -> None:
        await self.registry.touch(tenant_id, utcnow())
