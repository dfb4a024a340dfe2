"""An in-memory Runtime for unit tests of the loops' logic: instances are
records the test changes (fail, vanish, move), every change is a watch event,
exactly as the real adapters report them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from daemon.ports import AgentActivity, AgentLaunch, Instance, InstanceEvent, InstancePhase
from tests.support.fanout import Fanout


class MemoryRuntime:
    def __init__(self) -> None:
        self.instances: dict[str, Instance] = {}
        self.activities: dict[str, AgentActivity] = {}
        self.stopped: list[tuple[str, float]] = []
        self.started: list[str] = []
        self._watchers: Fanout[InstanceEvent] = Fanout()

    # -- test controls ---------------------------------------------------------
    def put(self, instance: Instance) -> Instance:
        assert instance.tenant_id is not None
        kind = "modified" if instance.tenant_id in self.instances else "added"
        self.instances[instance.tenant_id] = instance
        self._emit(InstanceEvent(kind, instance))
        return instance

    def fail(self, tenant_id: str, reason: str = "exit code 1") -> None:
        self.put(replace(self.instances[tenant_id], phase=InstancePhase.FAILED, reason=reason))

    def vanish(self, tenant_id: str) -> None:
        instance = self.instances.pop(tenant_id)
        self._emit(InstanceEvent("deleted", replace(instance, phase=InstancePhase.GONE)))

    def emit_stale(self, event: InstanceEvent) -> None:
        """Deliver an event without changing state (a late event for an old instance)."""
        self._emit(event)

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def _emit(self, event: InstanceEvent) -> None:
        self._watchers.publish(event)

    # -- Runtime protocol ----------------------------------------------------------
    async def start(self, launch: AgentLaunch) -> Instance:
        existing = self.instances.get(launch.tenant_id)
        if existing is not None and existing.phase in (InstancePhase.PENDING, InstancePhase.READY):
            return existing
        self.started.append(launch.tenant_id)
        n = len(self.started)
        return self.put(
            Instance(
                name=f"agent-{launch.tenant_id}-{n}",
                tenant_id=launch.tenant_id,
                phase=InstancePhase.READY,
                webhook_url=f"http://127.0.0.1:{20000 + n}/telegram-webhook",
                gateway_url=f"http://127.0.0.1:{20000 + n}",
            )
        )

    async def wait_ready(self, tenant_id: str, timeout: float) -> Instance:
        return self.instances[tenant_id]

    async def stop(self, tenant_id: str, *, grace_s: float) -> None:
        self.stopped.append((tenant_id, grace_s))
        if tenant_id in self.instances:
            self.put(replace(self.instances[tenant_id], phase=InstancePhase.STOPPING))
            self.vanish(tenant_id)

    async def get(self, tenant_id: str) -> Instance | None:
        return self.instances.get(tenant_id)

    async def list(self) -> list[Instance]:
        return list(self.instances.values())

    async def watch(self) -> AsyncIterator[InstanceEvent]:
        with self._watchers.subscribe() as queue:
            while True:
                yield await queue.get()

    async def logs(
        self, tenant_id: str, *, follow: bool, since_s: float | None
    ) -> AsyncIterator[str]:
        raise KeyError(tenant_id)
        yield ""  # pragma: no cover

    async def activity(self, tenant_id: str) -> AgentActivity | None:
        return self.activities.get(tenant_id)

    async def close(self) -> None:
        pass
