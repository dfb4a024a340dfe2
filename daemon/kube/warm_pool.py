"""Warm pool: keep ``live_config.warm_pool_target`` unclaimed warm pods, claim one per wake.

* ``run()`` is leader-only (one replica sizes the pool): it reconciles whenever the live
  config changes (Coordination.watch_config, pub/sub) or a pod event touches the pool (the
  shared informer), never on a timer. Failed warm pods are deleted, missing ones created
  (generateName), extras deleted (pending ones first: they are not useful yet).
* ``claim(tenant_id, image=...)`` runs on any replica: relabel the oldest claimable pod of
  that image with its resourceVersion as precondition. Two replicas racing for one pod: one
  patch wins, the other gets 409 and moves on to the next pod, so a pod is never given to
  two tenants. A tenant whose image differs from the pool's finds no pod (cold start).
* Image- and config-aware: warm pods carry their image and the hash of the warm config
  (``otm-warm-config`` Secret) they booted with; pods of an image the pool no longer holds
  or of an old config are never claimed and are replaced by the leader. The pool holds
  the images of ``image_mix`` (the pool's image alone, or during a rollout both images in
  the wave's proportion: daemon/rollout.py ``pool_mix``, set by the rollout controller).

Pods this manager created or deleted but the informer has not shown yet are counted, so a
burst of events does not over-create or over-delete.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client

from daemon.cancellation import cancel_and_wait
from daemon.coordination import Coordination
from daemon.kube import manifests as m
from daemon.kube.client import JSON, ApiException, call_json
from daemon.kube.informer import PodInformer
from daemon.kube.warm_bind_token import pod_bind_token
from daemon.metrics import Metrics
from daemon.model import new_secret
from daemon.rollout import split_target

log = logging.getLogger(__name__)


def _meta(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    meta: Mapping[str, Any] = pod.get("metadata") or {}
    return meta


def _phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def claimable(pod: Mapping[str, Any]) -> bool:
    """Unclaimed, running with an IP, its bootstrap up, not being deleted."""
    if not m.is_warm(pod) or _meta(pod).get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        return False
    for cs in status.get("containerStatuses") or []:
        if cs.get("name") == "gateway":
            # `started` turns true once the startupProbe (/healthz) passed: the bootstrap
            # listens for the bind. Running alone may be a process still booting.
            return bool((cs.get("state") or {}).get("running")) and cs.get("started") is True
    return False


CLAIM_ATTEMPTS = 3
"""Claim patches per pod: a stale cached resourceVersion costs a re-read, not the claim."""
WARM_DELETE_GRACE_S = 15
"""Grace for deleting an unclaimed warm pod: an idle gateway exits in about 2 s."""


@dataclass(eq=False, kw_only=True)
class WarmPool:
    api: Any
    informer: PodInformer
    pod_settings: m.PodSettings
    coordination: Coordination | None
    metrics: Metrics | None = None
    render_warm_config: Callable[[str], JSON] | None = None
    """bind token → the warm gateways' openclaw.json (deterministic per token, so every
    replica renders the same document and the same hash)."""

    def __post_init__(self) -> None:
        # Typed Any: responses are raw (_preload_content=False), not the declared models.
        self.core: Any = client.CoreV1Api(self.api)
        self.namespace = self.pod_settings.namespace
        self.target = 0
        self.claims = 0
        self._token: str | None = None
        self._token_lock = asyncio.Lock()
        self._render_warm_config = self.render_warm_config or _default_warm_config(
            self.pod_settings
        )
        self._warm_config: tuple[JSON, str] | None = None
        self._wake = asyncio.Event()
        self._created_unseen: dict[str, str] = {}
        """Pods created but not yet seen by the informer → their image."""
        self.image_mix: dict[str, float] = {self.pod_settings.image: 1.0}
        """Share of the pool per image."""
        self._deleted_unseen: set[str] = set()

    # -- views ----------------------------------------------------------------------------

    def warm_pods(self) -> list[JSON]:
        """Unclaimed warm pods that count towards the target (not failed, not deleting)."""
        return [
            p
            for p in self.informer.pods()
            if m.is_warm(p)
            and not _meta(p).get("deletionTimestamp")
            and _phase(p) not in ("Failed", "Succeeded")
            and _meta(p)["name"] not in self._deleted_unseen
        ]

    @property
    def size(self) -> int:
        cached = {_meta(p)["name"] for p in self.warm_pods()}
        return len(cached | set(self._created_unseen))

    def available(self) -> int:
        return sum(1 for p in self.informer.pods() if self._current(p) and claimable(p))

    def status(self) -> dict[str, int]:
        """For ``otm status``: ready (claimable now), booting, stale (an old image or warm
        config, waiting to be replaced), target."""
        pods = self.warm_pods()
        stale = sum(1 for p in pods if not self._current(p))
        ready = self.available()
        return {
            "target": self.target,
            "ready": ready,
            "booting": max(0, self.size - ready - stale),
            "stale": stale,
        }

    def set_image_mix(self, mix: dict[str, float]) -> None:
        """Hold these images in these shares (the rollout controller, on the leader)."""
        if mix != self.image_mix:
            log.info("warm pool images: %s", mix)
            self.image_mix = dict(mix)
            self._wake.set()

    def _current(self, pod: Mapping[str, Any], image: str | None = None) -> bool:
        """Booted from ``image`` (default: an image the pool holds) and its current warm
        config."""
        pod_image = m.warm_pod_image(pod)
        if image is not None:
            if pod_image != image:
                return False
        elif not self.image_mix.get(pod_image or "", 0.0) > 0:
            return False
        return self._warm_config is None or m.warm_pod_config_hash(pod) == self._warm_config[1]

    # -- the warm config --------------------------------------------------------------------

    async def warm_config(self) -> JSON:
        """The warm gateways' openclaw.json; created or updated in its Secret once."""
        token = await self.bind_token()
        async with self._token_lock:
            if self._warm_config is None:
                config = self._render_warm_config(token)
                text = m.config_json(config)
                await self._apply_warm_config_secret(text)
                self._warm_config = (config, m.config_hash(text))
            return self._warm_config[0]

    async def _apply_warm_config_secret(self, text: str) -> None:
        body = m.warm_config_secret(text, namespace=self.namespace)
        try:
            await call_json(self.core.create_namespaced_secret, self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            await call_json(
                self.core.replace_namespaced_secret, m.WARM_CONFIG_SECRET, self.namespace, body
            )

    # -- the bind token ---------------------------------------------------------------------

    async def bind_token(self) -> str:
        """The namespace's bind key (created once per namespace). Never sent to a pod as a
        token: each pod accepts only its own, ``pod_bind_token``
        (daemon/kube/warm_bind_token.py)."""
        async with self._token_lock:
            if self._token is None:
                self._token = await self._read_or_create_token()
            return self._token

    async def pod_bind_token(self, pod: Mapping[str, Any]) -> str:
        """The token this warm pod's bootstrap accepts binds (and refreshes) with."""
        return pod_bind_token(await self.bind_token(), _meta(pod)["name"])

    async def _read_or_create_token(self) -> str:
        for _ in range(3):
            try:
                secret = await call_json(
                    self.core.read_namespaced_secret, m.WARM_BIND_SECRET, self.namespace
                )
                return base64.b64decode(secret["data"][m.WARM_BIND_KEY]).decode()
            except ApiException as exc:
                if exc.status != 404:
                    raise
            token = new_secret()
            try:
                body = m.warm_bind_secret(token, namespace=self.namespace)
                await call_json(self.core.create_namespaced_secret, self.namespace, body)
                return token
            except ApiException as exc:
                if exc.status != 409:  # another replica created it first: read theirs
                    raise
        raise RuntimeError("could not read or create the warm bind Secret")

    # -- claim (any replica) ----------------------------------------------------------------

    async def claim(self, tenant_id: str, *, image: str | None = None) -> JSON | None:
        """Relabel one claimable pod of ``image`` (default: the pool's) for the tenant; None
        when there is none."""
        await self.warm_config()
        image = image or self.pod_settings.image
        candidates = sorted(
            (p for p in self.informer.pods() if claimable(p) and self._current(p, image)),
            key=lambda p: _meta(p).get("creationTimestamp") or "",
        )
        claimed_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for pod in candidates:
            claimed = await self._claim_pod(pod, tenant_id, claimed_at, image)
            if claimed is not None:
                self.claims += 1
                log.info("claimed warm pod %s for %s", _meta(pod)["name"], tenant_id)
                return claimed
        return None

    async def _claim_pod(
        self, pod: JSON, tenant_id: str, claimed_at: str, image: str
    ) -> JSON | None:
        """The claim patch carries the pod's resourceVersion, so two replicas never claim one
        pod. A 409 may also mean only that the kubelet wrote the pod's status since the cache
        saw it: read it again and retry while it is still unclaimed and of ``image``."""
        name = _meta(pod)["name"]
        for _ in range(CLAIM_ATTEMPTS):
            try:
                claimed: JSON = await call_json(
                    self.core.patch_namespaced_pod,
                    name,
                    self.namespace,
                    m.claim_patch(pod, tenant_id, claimed_at),
                    _content_type="application/merge-patch+json",
                )
                return claimed
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise
                log.debug("warm pod %s not claimable as cached (%s)", name, exc.status)
                if exc.status == 404:
                    return None
            try:
                pod = await call_json(self.core.read_namespaced_pod, name, self.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            if not (claimable(pod) and self._current(pod, image)):
                return None  # claimed by another replica, or no longer what we want
        return None

    # -- sizing (leader only) -----------------------------------------------------------------

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Keep the pool at its target until cancelled (run it only while leading)."""
        await self.bind_token()
        with self.informer.subscribe() as events:
            tasks = [
                asyncio.create_task(self._follow_events(events), name="warm-pool-events"),
            ]
            if self.coordination is not None:
                tasks.append(asyncio.create_task(self._follow_config(), name="warm-pool-config"))
            else:
                self._wake.set()
            try:
                while True:
                    for task in tasks:
                        if task.done():
                            task.result()  # a follower crashed: surface it
                            raise RuntimeError(f"{task.get_name()} ended")
                    await self._wake.wait()
                    self._wake.clear()
                    await self.reconcile()
            finally:
                # Re-cancelling: redis-py can swallow one cancel inside watch_config.
                stuck = await cancel_and_wait(tasks, timeout=5.0)
                if stuck:
                    log.error("warm pool: %d follower task(s) ignored cancellation", len(stuck))

    async def _follow_config(self) -> None:
        assert self.coordination is not None
        async for config in self.coordination.watch_config():
            if config.warm_pool_target != self.target:
                log.info("warm pool target %d → %d", self.target, config.warm_pool_target)
            self.target = config.warm_pool_target
            self._wake.set()

    async def _follow_events(self, events: AsyncIterator[tuple[str, JSON]]) -> None:
        async for _kind, pod in events:
            name = _meta(pod).get("name", "")
            self._created_unseen.pop(name, None)
            if name in self._deleted_unseen and (
                _kind == "DELETED" or _meta(pod).get("deletionTimestamp")
            ):
                self._deleted_unseen.discard(name)
            if name.startswith(m.WARM_NAME_PREFIX):
                self._wake.set()

    async def reconcile(self) -> None:
        """One pass: delete failed warm pods and those of an image the pool no longer holds
        or an old warm config, then create or delete to reach each image's share of the
        target."""
        await self.warm_config()
        for pod in self.informer.pods():
            dead = m.is_warm(pod) and _phase(pod) in ("Failed", "Succeeded")
            stale = m.is_warm(pod) and not self._current(pod)
            if (dead or stale) and not _meta(pod).get("deletionTimestamp"):
                if stale and not dead:
                    log.info("replacing warm pod %s (old image or config)", _meta(pod)["name"])
                await self._delete(pod)
        all_pods = self.warm_pods()
        for image, want in split_target(self.target, self.image_mix).items():
            pods = [p for p in all_pods if m.warm_pod_image(p) == image]
            names = {_meta(p)["name"] for p in pods}
            names |= {n for n, i in self._created_unseen.items() if i == image}
            have = len(names)
            if have < want:
                for _ in range(want - have):
                    await self._create(image)
            elif have > want:
                # Pending pods first (not useful yet), then the newest.
                pending = [p for p in pods if not claimable(p)]
                ready = sorted(
                    (p for p in pods if claimable(p)),
                    key=lambda p: _meta(p).get("creationTimestamp") or "",
                    reverse=True,
                )
                ranked = pending + ready
                for pod in ranked[: have - want]:
                    await self._delete(pod)
        self._report()

    async def pod_body(self, image: str | None = None) -> JSON:
        """A new warm pod of ``image`` (default: the pool's) and the current warm config."""
        await self.bind_token()  # the pod's env refers to the bind Secret: it must exist
        await self.warm_config()  # and its volume to the warm config Secret
        assert self._warm_config is not None
        return m.warm_pod(
            settings=self.pod_settings, image=image, config_sha256=self._warm_config[1]
        )

    async def _create(self, image: str) -> None:
        body = await self.pod_body(image)
        pod = await call_json(self.core.create_namespaced_pod, self.namespace, body)
        name = _meta(pod)["name"]
        if name not in self.informer.cache:
            self._created_unseen[name] = image
        log.info("created warm pod %s (%s)", name, image)

    async def _delete(self, pod: JSON) -> None:
        """Delete the pod exactly as it was seen: a claim since (another replica relabelled
        it for a tenant) changes its resourceVersion, and the delete is refused (409)
        instead of killing a tenant's agent. With a grace period, not a force delete:
        the kubelet stops the sandbox before the API forgets the pod, and a pod being
        bound gets to exit cleanly."""
        meta = _meta(pod)
        name = meta["name"]
        options: JSON = {
            "gracePeriodSeconds": WARM_DELETE_GRACE_S,
            "preconditions": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]},
        }
        try:
            await call_json(
                self.core.delete_namespaced_pod,
                name,
                self.namespace,
                body=options,
                grace_period_seconds=WARM_DELETE_GRACE_S,
            )
        except ApiException as exc:
            if exc.status == 409:  # changed since we looked (claimed?): decide again
                log.info("warm pod %s changed since it was chosen for deletion", name)
                self._wake.set()
                return
            if exc.status != 404:
                raise
            return
        current = self.informer.cache.get(name)
        if current is not None and not _meta(current).get("deletionTimestamp"):
            self._deleted_unseen.add(name)
        log.info("deleted warm pod %s", name)

    def _report(self) -> None:
        if self.metrics is not None:
            self.metrics.warm_pool_size.set(self.size)
            self.metrics.warm_pool_target.set(self.target)


def hooks_token_for(bind_token: str) -> str:
    """The warm gateways' hooks token, derived from the bind Secret (same on every replica)."""
    return hashlib.sha256(f"otm-warm-hooks:{bind_token}".encode()).hexdigest()


def _default_warm_config(ps: m.PodSettings) -> Callable[[str], JSON]:
    def render(bind_token: str) -> JSON:
        return m.render_warm_pod_config(
            ps,
            api_root=None,
            # Replaced by a random per-pod token at boot (daemon/kube/warm_bootstrap.py).
            gateway_token="replaced-at-boot",
            hooks_token=hooks_token_for(bind_token),
        )

    return render
