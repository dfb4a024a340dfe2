"""The warm half of the Kubernetes runtime: claim a pre-booted warm pod and bind it.

A wake claims a warm pod of the tenant's image (warm_pool.py) unless the tenant's saved
global database holds what a warm gateway would drop (daemon/agent/state.py), vends the
tenant's S3 credentials first (tenant_credentials.py; no credentials, no claim), POSTs the
bound config to the pod's bootstrap (warm_bootstrap.py), and records the expiry of the
credentials on the pod for the leader's refresher, which re-POSTs fresh ones. The pod's
own phases (restore, config write, channel up) are read from its bootstrap once it is
Ready, for the per-phase start metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from daemon.agent import state as agent_state
from daemon.agent.openclaw_config import ModelProvider
from daemon.kube import manifests as m
from daemon.kube import names
from daemon.kube.client import JSON, ApiException, call_json
from daemon.kube.informer import PodInformer
from daemon.kube.pod_status import pod_endpoint, pod_phase
from daemon.kube.tenant_credentials import ANNOTATION_EXPIRES, CredentialVendor, TenantCredentials
from daemon.kube.warm_pool import WarmPool
from daemon.metrics import (
    COLD,
    PHASE_CHANNEL_UP,
    PHASE_CLAIM,
    PHASE_CONFIG_WRITE,
    PHASE_RESTORE,
    WARM,
    Metrics,
)
from daemon.ports import AgentFailed, AgentLaunch, InstancePhase, StateStore

log = logging.getLogger(__name__)
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)

# The tenant's global databases (and their WAL) as keys under its ``state/`` prefix.
_GLOBAL_DB_FILES = tuple(
    f"{db.as_posix()}{suffix}"
    for db in (agent_state.OPENCLAW_GLOBAL_DB, agent_state.STUB_GLOBAL_DB)
    for suffix in ("", "-wal", "-shm")
)


class WarmBinding:
    """Mixed into KubernetesRuntime (which sets these attributes)."""

    core: Any
    informer: PodInformer
    namespace: str
    pod_settings: m.PodSettings
    session: aiohttp.ClientSession
    warm_pool: WarmPool | None
    metrics: Metrics | None
    credentials: CredentialVendor | None
    state_store: StateStore | None
    model_provider: ModelProvider | None
    api_root: str | None
    webhook_url_for: Callable[[str], str]

    def _current_pod(self, tenant_id: str) -> JSON | None:
        raise NotImplementedError

    def tenant_model_provider(self, launch: AgentLaunch) -> ModelProvider | None:
        """The model gateway with the tenant's own key (cold Secret and warm bind alike)."""
        if self.model_provider is not None and launch.model_key:
            return dataclasses.replace(self.model_provider, api_key=launch.model_key)
        return self.model_provider

    async def _delete_pod(
        self, name: str, *, grace_s: float, uid: str | None = None
    ) -> JSON | None:
        raise NotImplementedError

    async def _claim_warm(self, launch: AgentLaunch) -> JSON | None:
        pool = self.warm_pool
        if pool is None or (self.pod_settings.state_sync and self.credentials is None):
            return None
        image = launch.image or self.pod_settings.image
        claim_started = time.monotonic()
        if blockers := await self._warm_blockers(launch.tenant_id):
            log.info("%s starts cold: %s", launch.tenant_id, "; ".join(blockers))
            return None
        try:
            # Before the claim: a pod claimed but never bound would hold the tenant's label.
            creds = await self._vend(launch.tenant_id)
        except (BotoCoreError, ClientError) as exc:
            log.warning("no credentials for %s (%s); starting cold", launch.tenant_id, exc)
            return None
        while True:
            pod = await pool.claim(launch.tenant_id, image=image)
            if pod is None:
                self._observe(PHASE_CLAIM, COLD, time.monotonic() - claim_started)
                return None
            try:
                warm = await pool.warm_config()
                config = m.render_bound_pod_config(
                    warm,
                    launch,
                    webhook_url=self.webhook_url_for(launch.tenant_id),
                    api_root=launch.api_root or self.api_root,
                    model_provider=self.tenant_model_provider(launch),
                )
                body = m.bind_request(
                    launch.tenant_id, config, sync_env=creds.env() if creds else None
                )
                await self._post_bind(pod, body, await pool.pod_bind_token(pod), expect=202)
                # Claim: relabel + vend credentials + the bind POST (the pod's own phases,
                # restore/config write/channel up, are read from its bootstrap once Ready).
                self._observe(PHASE_CLAIM, WARM, time.monotonic() - claim_started)
                if creds is not None:
                    pod = await self._annotate_expiry(pod, creds)
                return pod
            except (aiohttp.ClientError, TimeoutError, AgentFailed) as exc:
                log.warning(
                    "binding warm pod %s to %s failed (%s); discarding it",
                    pod["metadata"]["name"],
                    launch.tenant_id,
                    exc,
                )
                await self._delete_pod(
                    pod["metadata"]["name"], grace_s=0, uid=pod["metadata"]["uid"]
                )

    async def _warm_blockers(self, tenant_id: str) -> list[str]:
        """What in the tenant's saved global database a warm gateway would drop (acked but
        unprocessed updates, user-created cron jobs): the same check as the local pool,
        on the few keys it reads, fetched from the state store."""
        if self.state_store is None:
            return []
        with tempfile.TemporaryDirectory(prefix="otm-warm-check-") as tmp:
            root = Path(tmp)
            for relative in _GLOBAL_DB_FILES:
                try:
                    data = await self.state_store.get(tenant_id, f"state/{relative}")
                except KeyError:
                    continue
                target = root / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            return await asyncio.to_thread(agent_state.warm_blockers, root)

    async def _observe_bind_phases(self, tenant_id: str) -> None:
        """The in-pod phases of a warm bind, as the bootstrap timed them: restore (the
        sidecar's download), config write, channel up (write → webhook takes the secret)."""
        pod = self._current_pod(tenant_id)
        endpoint = pod_endpoint(pod, names.WARM_BIND_PORT) if pod else None
        if pod is None or endpoint is None or self.warm_pool is None:
            return
        url = f"http://{endpoint[0]}:{endpoint[1]}/otm/timings"
        headers = {"Authorization": f"Bearer {await self.warm_pool.pod_bind_token(pod)}"}
        try:
            async with self.session.get(url, headers=headers, timeout=HTTP_TIMEOUT) as resp:
                body = await resp.json(content_type=None) if resp.status == 200 else {}
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return  # metrics only
        for phase, key in (
            (PHASE_RESTORE, "restore_ms"),
            (PHASE_CONFIG_WRITE, "config_write_ms"),
            (PHASE_CHANNEL_UP, "channel_up_ms"),
        ):
            if isinstance(body.get(key), int | float):
                self._observe(phase, WARM, body[key] / 1000)

    def _observe(self, phase: str, path: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.agent_start_phase_seconds.labels(phase=phase, path=path).observe(seconds)

    async def _vend(self, tenant_id: str) -> TenantCredentials | None:
        if self.credentials is None or not self.pod_settings.state_sync:
            return None
        return await self.credentials.vend(tenant_id)

    async def _post_bind(self, pod: JSON, body: JSON, token: str, *, expect: int) -> None:
        endpoint = pod_endpoint(pod, names.WARM_BIND_PORT)
        if endpoint is None:
            raise AgentFailed(f"warm pod {pod['metadata']['name']} has no IP")
        url = f"http://{endpoint[0]}:{endpoint[1]}/otm/bind"
        async with self.session.post(
            url, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT
        ) as resp:
            if resp.status != expect:
                raise AgentFailed(f"bind answered {resp.status}")

    async def _annotate_expiry(self, pod: JSON, creds: TenantCredentials) -> JSON:
        patch = {
            "metadata": {
                "annotations": {ANNOTATION_EXPIRES: creds.env()["OTM_CREDENTIALS_EXPIRE_AT"]}
            }
        }
        try:
            return await call_json(
                self.core.patch_namespaced_pod,
                pod["metadata"]["name"],
                self.namespace,
                patch,
                _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            # Unannotated means "due": the refresher re-vends on its next pass.
            log.warning("annotating %s failed (%s)", pod["metadata"]["name"], exc.status)
            return pod

    def _bound_warm_pods(self) -> list[JSON]:
        """Claimed warm pods still running: their credentials must be kept fresh."""
        return [
            p
            for p in self.informer.pods()
            if p["metadata"]["name"].startswith(m.WARM_NAME_PREFIX)
            and m.pod_tenant(p) is not None
            and not p["metadata"].get("deletionTimestamp")
            and pod_phase(p) in (InstancePhase.PENDING, InstancePhase.READY)
        ]

    async def _push_credentials(self, pod: JSON, creds: TenantCredentials) -> None:
        """A credential refresh: the same bind POST without config (the bootstrap rewrites
        only the sidecar's tenant.env), then the new expiry on the pod."""
        assert self.warm_pool is not None
        body = m.bind_request(creds.tenant_id, None, sync_env=creds.env())
        await self._post_bind(pod, body, await self.warm_pool.pod_bind_token(pod), expect=200)
        await self._annotate_expiry(pod, creds)
