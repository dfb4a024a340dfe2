"""Local warm pool: pre-booted gateway processes, bound to a tenant at claim without a restart.

A real OpenClaw gateway spends 15-20 CPU-seconds (12-20 s on 2 cores) before it is ready; a
message to a sleeping tenant should not wait for that. So the pool keeps
``warm_pool_target`` (live config) gateways booted with no tenant in them:

- **Warm gateway**: the agent command (the local "image") on its own run dir under
  ``{data_dir}/warm/{name}/``, config from ``render_warm_config`` (a placeholder Telegram
  account talking to the pool's own Bot API, ``warm_bot_api.py``, or Telegram disabled; the
  throw-away agent ``warm``; no tenant data), ready once its ``/readyz`` says so.
- **Images**: locally an image is a command (``LocalRuntime.command_for``). The pool holds
  gateways of the commands of ``image_mix`` (set by the rollout controller: the default
  image alone, or both images in the wave's proportion during a rollout); a gateway of a
  command no longer wanted is stopped (recycled), and a claim only takes a gateway of the
  tenant's image's command.
- **Refill**: one boot at a time (a boot takes a core for ~15 s), not while a cold start is
  booting, and not within ``warm_pool_refill_pause_s`` after a claim (the bound gateway's first turn
  needs that CPU more). Extra or failed warm gateways are stopped.
- **Claim** (``claim``, inside ``LocalRuntime.start`` under the tenant lock): take a ready
  gateway of the same command; unpack the tenant's snapshot beside it; if its global state
  holds something a running gateway cannot take over (``daemon/agent/state.py``), give the
  gateway back and start cold. Otherwise move ``agents/main/`` and ``workspace/`` into the
  warm state dir (``main`` was never opened there), then one atomic config write
  (``render_bound_config``, tmp + rename) that the gateway hot-reloads. The gateway becomes
  the tenant's agent: ``{agents_dir}/{tenant}/{name}`` is a symlink to its run dir, so the
  runtime's stop, post-mortem and crash-recovery syncs save it like a cold agent's.
- **Ready** when the tenant's webhook accepts the tenant's secret: a probe POSTs a malformed
  body with that secret, and only a ``400`` (secret accepted, body refused: nothing is
  spooled) counts; ``401`` means the old config still runs.

Phases are observed in ``otm_agent_start_phase_seconds`` (daemon/metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from daemon.adapters.local import processes as local_processes
from daemon.adapters.local.logs import LogSink
from daemon.adapters.local.run_state import mark_restored
from daemon.adapters.local.runtime import (
    OPENCLAW_FILE_LOG,
    ORPHAN_GRACE_S,
    PROBE_TIMEOUT,
    WEBHOOK_PATH,
    _Agent,
    _signal_group,
    loopback_listeners,
)
from daemon.adapters.local.warm_bot_api import PlaceholderBotApi
from daemon.agent import state as agent_state
from daemon.agent.openclaw_config import (
    WARM_AGENT_ID,
    model_provider,
    render_bound_config,
    render_warm_config,
    tuning_from_settings,
)
from daemon.coordination import Coordination
from daemon.metrics import (
    PHASE_CHANNEL_UP,
    PHASE_CLAIM,
    PHASE_CONFIG_WRITE,
    PHASE_RESTORE,
    WARM,
    Metrics,
)
from daemon.model import new_secret
from daemon.ports import AgentLaunch, Instance, InstancePhase
from daemon.rollout import split_target
from daemon.wake_errors import WakeImpossible

if TYPE_CHECKING:
    from daemon.adapters.local.runtime import LocalRuntime

log = logging.getLogger(__name__)

WARM_DIR = "warm"
WARM_WORKSPACE = "warm-workspace"
CONFIG_FILE = "openclaw.json"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
PROBE_BODY = b"{"
"""Malformed JSON: a gateway that accepts the secret answers 400 and spools nothing."""
BOOT_TIMEOUT_S = 300.0
"""A warm gateway not ready by then is stopped (and another one booted)."""
BIND_PROBE_FIRST_S = 0.05
BIND_PROBE_MAX_S = 0.5
"""Bounded probing: OpenClaw rate-limits failed webhook secrets at 120 per minute."""
WARM_PROBE_MAX_S = 1.0
WARM_UP_TIMEOUT = aiohttp.ClientTimeout(total=120)


@dataclass
class WarmGateway:
    name: str
    command: tuple[str, ...]
    run_dir: Path
    proc: asyncio.subprocess.Process
    webhook_port: int
    gateway_port: int
    config: dict[str, Any]
    sink: Callable[[str], None]
    """Where stdout lines go: the pool's log while warm, the tenant's log once bound."""
    started_at: float = field(default_factory=time.monotonic)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    claimed: bool = False
    stopping: bool = False
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def state_dir(self) -> Path:
        return self.run_dir / "state"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.webhook_port}{WEBHOOK_PATH}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"


class LocalWarmPool:
    def __init__(
        self,
        runtime: LocalRuntime,
        *,
        coordination: Coordination | None,
        metrics: Metrics | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.coordination = coordination
        self.metrics = metrics
        self.root = runtime.settings.data_dir / WARM_DIR
        self.target = 0
        self.claims = 0
        self._gateways: dict[str, WarmGateway] = {}
        self._changed = asyncio.Event()
        self._paused_until = 0.0
        self._log_sink = LogSink(self.root / "warm.log")
        self._closed = False
        self._status_changed = asyncio.Event()
        self._placeholder_api_root: str | None = None
        """The pool's own Bot API for placeholder accounts (warm_bot_api.py)."""
        self.image_mix: dict[str, float] = {self.settings.agent_image: 1.0}
        """Share of the pool per image (rollouts: daemon/rollout.py ``pool_mix``)."""

    def set_image_mix(self, mix: dict[str, float]) -> None:
        if mix != self.image_mix:
            log.info("local warm pool images: %s", mix)
            self.image_mix = dict(mix)
            self._changed.set()

    def wanted(self) -> dict[tuple[str, ...], int]:
        """Warm gateways wanted per command (tags of one command share its gateways)."""
        out: dict[tuple[str, ...], int] = {}
        for image, count in split_target(self.target, self.image_mix).items():
            try:
                command = self.runtime.command_for(image)
            except WakeImpossible as exc:
                log.warning("local warm pool: %s", exc)
                continue
            out[command] = out.get(command, 0) + count
        return out

    # -- views ---------------------------------------------------------------------------

    def _unclaimed(self) -> list[WarmGateway]:
        return [g for g in self._gateways.values() if not g.claimed and not g.stopping]

    def status(self) -> dict[str, int]:
        """For ``otm status``: ready (claimable now), booting, target."""
        unclaimed = self._unclaimed()
        ready = sum(1 for g in unclaimed if g.ready.is_set())
        return {
            "target": self.target,
            "size": len(unclaimed),
            "ready": ready,
            "booting": len(unclaimed) - ready,
        }

    async def wait_ready(self, count: int) -> None:
        """Until ``count`` gateways are ready (tests, bench; bound by the caller's timeout)."""
        while self.status()["ready"] < count:
            self._status_changed.clear()
            await self._status_changed.wait()

    def _report(self) -> None:
        self._status_changed.set()
        if self.metrics is not None:
            self.metrics.warm_pool_size.set(self.status()["ready"])
            self.metrics.warm_pool_target.set(self.target)

    def _observe(self, phase: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.agent_start_phase_seconds.labels(phase=phase, path=WARM).observe(seconds)

    # -- the pool loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Keep ``target`` warm gateways until cancelled (every daemon runs its own: they are
        its child processes)."""
        await self._end_leftovers()
        async with contextlib.AsyncExitStack() as stack:
            if self.settings.warm_agent_telegram == "placeholder":
                bot_api = await stack.enter_async_context(PlaceholderBotApi())
                self._placeholder_api_root = bot_api.base_url
            follow = asyncio.create_task(self._follow_config(), name="local-warm-pool-config")
            try:
                await self._refill_loop()
            finally:
                follow.cancel()
                await asyncio.gather(follow, return_exceptions=True)
                # No warm gateway outlives its pool (close() is idempotent).
                await asyncio.shield(self.close())

    async def _follow_config(self) -> None:
        if self.coordination is None:
            return
        async for config in self.coordination.watch_config():
            if config.warm_pool_target != self.target:
                log.info("local warm pool target %d → %d", self.target, config.warm_pool_target)
            self.target = config.warm_pool_target
            self._report()
            self._changed.set()

    def poke(self) -> None:
        self._changed.set()

    def _deficit(self) -> tuple[str, ...] | None:
        """The command most short of its wanted count, if any is."""
        have: dict[tuple[str, ...], int] = {}
        for gateway in self._unclaimed():
            have[gateway.command] = have.get(gateway.command, 0) + 1
        short = {c: n - have.get(c, 0) for c, n in self.wanted().items() if n > have.get(c, 0)}
        return max(short, key=lambda c: short[c]) if short else None

    async def _refill_loop(self) -> None:
        while not self._closed:
            self._changed.clear()
            await self._shrink()
            if self._deficit() is not None:
                await self._wait_for_spare_cpu()
                command = self._deficit()
                if command is not None and not self._closed:
                    gateway = await self._boot(command)
                    await self._wait_booted(gateway)
                    continue
            self._report()
            await self._changed.wait()

    async def _wait_for_spare_cpu(self) -> None:
        """One boot at a time, never beside a cold start or a just-bound first turn."""
        while not self._closed:
            pause = self._paused_until - time.monotonic()
            booting = [a.ready for a in self.runtime._agents.values() if not a.ready.done()]
            if pause <= 0 and not booting:
                return
            if booting:
                await asyncio.wait(booting, timeout=max(pause, 5.0))
            else:
                await asyncio.sleep(pause)

    async def _wait_booted(self, gateway: WarmGateway) -> None:
        ready = asyncio.ensure_future(gateway.ready.wait())
        exited = asyncio.ensure_future(gateway.exited.wait())
        try:
            await asyncio.wait(
                {ready, exited}, timeout=BOOT_TIMEOUT_S, return_when="FIRST_COMPLETED"
            )
        finally:
            ready.cancel()
            exited.cancel()
        if not gateway.ready.is_set() and not gateway.exited.is_set():
            log.warning(
                "warm gateway %s not ready after %.0fs; stopping it", gateway.name, BOOT_TIMEOUT_S
            )
            await self._stop(gateway)
        self._report()

    async def _shrink(self) -> None:
        """Stop gateways of commands no longer wanted (an old image), then extras."""
        wanted = self.wanted()
        for command in {g.command for g in self._unclaimed()}:
            extra = sum(1 for g in self._unclaimed() if g.command == command) - wanted.get(
                command, 0
            )
            if extra <= 0:
                continue
            if wanted.get(command, 0) == 0:
                log.info(
                    "local warm pool: recycling gateways of %s (image no longer wanted)", command[0]
                )
            # Booting ones first: they are not useful yet.
            ranked = sorted(
                (g for g in self._unclaimed() if g.command == command),
                key=lambda g: (g.ready.is_set(), g.started_at),
            )
            for gateway in ranked[:extra]:
                await self._stop(gateway)

    # -- boot ---------------------------------------------------------------------------------

    async def _boot(self, command: tuple[str, ...]) -> WarmGateway:
        name = f"warm-{secrets.token_hex(3)}"
        run_dir = self.root / name
        state_dir = run_dir / "state"
        await asyncio.to_thread(state_dir.mkdir, parents=True)
        await asyncio.to_thread((run_dir / "home").mkdir)
        listeners = loopback_listeners(self.runtime.agent_ports)
        config = render_warm_config(
            warm_secret=new_secret(),
            workspace_dir=str(state_dir / WARM_WORKSPACE),
            listeners=listeners,
            # Placeholder accounts talk to the pool's own Bot API, never to Telegram.
            api_root=self._placeholder_api_root or self.settings.telegram_api_base,
            gateway_token=new_secret(),
            hooks_token=new_secret(),
            model_provider=model_provider(self.settings),
            tuning=tuning_from_settings(self.settings),
            telegram=self.settings.warm_agent_telegram,
        )
        config["logging"] = {"file": str(run_dir / OPENCLAW_FILE_LOG)}
        config_path = run_dir / CONFIG_FILE
        await asyncio.to_thread(_write_new, config_path, config)
        proc = await self.runtime.spawn(run_dir, state_dir, config_path, command)
        if self._closed:  # closed while spawning: this one would outlive the pool
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
        sink = self._log_sink

        def to_pool_log(line: str) -> None:
            sink.write(f"[{name}] {line.rstrip()}")

        gateway = WarmGateway(
            name=name,
            command=command,
            run_dir=run_dir,
            proc=proc,
            webhook_port=listeners["webhook_port"],
            gateway_port=listeners["gateway_port"],
            config=config,
            sink=to_pool_log,
        )
        self._gateways[name] = gateway
        gateway.tasks = [
            asyncio.create_task(self._pump(gateway), name=f"warm-log:{name}"),
            asyncio.create_task(self._watch_exit(gateway), name=f"warm-exit:{name}"),
            asyncio.create_task(self._probe_warm(gateway), name=f"warm-probe:{name}"),
        ]
        log.info("warm gateway %s booting (pid %d)", name, proc.pid)
        self._report()
        return gateway

    async def _pump(self, gateway: WarmGateway) -> None:
        stream = gateway.proc.stdout
        assert stream is not None
        while True:
            try:
                raw = await stream.readline()
            except ValueError:
                raw = await stream.read(1 << 20)
            if not raw:
                return
            gateway.sink(raw.decode("utf-8", errors="replace"))

    async def _probe_warm(self, gateway: WarmGateway) -> None:
        """Ready = ``/readyz`` says ``ready: true`` (a placeholder account's listener is up too)."""
        delay = 0.05
        while not gateway.exited.is_set():
            if await self.runtime._answers(f"{gateway.gateway_url}/readyz", json_ready=True):
                if self.settings.warm_pool_warmup == "turn":
                    await self._warm_up(gateway)
                gateway.ready.set()
                log.info(
                    "warm gateway %s ready (%.1fs)",
                    gateway.name,
                    time.monotonic() - gateway.started_at,
                )
                self._report()
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await gateway.exited.wait()
            delay = min(delay * 2, WARM_PROBE_MAX_S)

    async def _warm_up(self, gateway: WarmGateway) -> None:
        """One turn on the throw-away agent, nothing delivered (best effort: a gateway that
        refuses it is still a ready gateway)."""
        hooks = gateway.config.get("hooks") or {}
        started = time.monotonic()
        try:
            async with self.runtime.session.post(
                f"{gateway.gateway_url}{hooks.get('path', '/hooks')}/agent",
                json={
                    "message": "warm-up",
                    "name": "otm-warm-up",
                    "agentId": WARM_AGENT_ID,
                    "deliver": False,
                    "waitForCompletion": True,
                },
                headers={"Authorization": f"Bearer {hooks.get('token', '')}"},
                timeout=WARM_UP_TIMEOUT,
            ) as resp:
                await resp.read()
                outcome = str(resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = type(exc).__name__
        log.info(
            "warm gateway %s warm-up turn: %s (%.1fs)",
            gateway.name,
            outcome,
            time.monotonic() - started,
        )

    async def _watch_exit(self, gateway: WarmGateway) -> None:
        code = await gateway.proc.wait()
        gateway.exited.set()
        if gateway.claimed:
            return  # the tenant's agent now: the runtime watches it
        self._gateways.pop(gateway.name, None)
        if not gateway.stopping:
            log.warning("warm gateway %s exited with code %s", gateway.name, code)
        _signal_group(gateway.proc.pid, signal.SIGKILL)
        await asyncio.to_thread(shutil.rmtree, gateway.run_dir, True)
        self._report()
        self._changed.set()

    async def _stop(self, gateway: WarmGateway, grace_s: float = 10.0) -> None:
        gateway.stopping = True
        _signal_group(gateway.proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await gateway.exited.wait()
        _signal_group(gateway.proc.pid, signal.SIGKILL)
        await asyncio.gather(*gateway.tasks, return_exceptions=True)

    async def _end_leftovers(self) -> None:
        """Warm gateways of a crashed daemon: end them and drop their dirs (no tenant data)."""
        if not await asyncio.to_thread(self.root.is_dir):
            return
        for run_dir in await asyncio.to_thread(
            lambda: [p for p in self.root.iterdir() if p.is_dir()]
        ):
            await local_processes.end_run_dir_processes(run_dir, ORPHAN_GRACE_S)
            await asyncio.to_thread(shutil.rmtree, run_dir, True)

    async def close(self) -> None:
        """Stop every unclaimed gateway (bound ones are the runtime's to stop)."""
        self._closed = True
        self._changed.set()
        await asyncio.gather(
            *(self._stop(g) for g in list(self._gateways.values()) if not g.claimed),
            return_exceptions=True,
        )
        self._log_sink.close()

    # -- claim ----------------------------------------------------------------------------------

    async def claim(self, launch: AgentLaunch) -> Instance | None:
        """Bind a ready warm gateway to the tenant (caller holds the tenant's runtime lock);
        None: start cold (no gateway of this command ready, or state a bind cannot carry)."""
        tenant_id = launch.tenant_id
        t0 = time.monotonic()
        command = self.runtime.command_for(launch.image)
        gateway = next(
            (
                g
                for g in sorted(self._unclaimed(), key=lambda g: g.started_at)
                if g.ready.is_set() and not g.exited.is_set() and g.command == command
            ),
            None,
        )
        if gateway is None:
            return None
        gateway.claimed = True
        self._observe(PHASE_CLAIM, time.monotonic() - t0)
        try:
            t1 = time.monotonic()
            blockers = await self._restore(tenant_id, gateway)
            if blockers:
                log.info("tenant %s starts cold: %s", tenant_id, "; ".join(blockers))
                gateway.claimed = False
                return None
            self._observe(PHASE_RESTORE, time.monotonic() - t1)
            t2 = time.monotonic()
            workspace = gateway.state_dir / agent_state.WORKSPACE_DIR
            bound = render_bound_config(
                gateway.config,
                tenant_id=tenant_id,
                bot_token=launch.bot_token,
                webhook_url=self.runtime.webhook_url_for(tenant_id),
                webhook_secret=launch.webhook_secret,
                workspace_dir=str(workspace),
                api_root=launch.api_root or self.settings.telegram_api_base,
                model_provider=model_provider(self.settings, launch.model_key),
            )
            await asyncio.to_thread(_write_atomically, gateway.run_dir / CONFIG_FILE, bound)
            written = time.monotonic()
            self._observe(PHASE_CONFIG_WRITE, written - t2)
        except BaseException:
            # Half-bound: the gateway may hold tenant files now; it serves no one else.
            self._gateways.pop(gateway.name, None)
            await self._stop(gateway)
            await asyncio.to_thread(shutil.rmtree, gateway.run_dir, True)
            self._changed.set()
            raise
        self._gateways.pop(gateway.name, None)
        self.claims += 1
        self._paused_until = time.monotonic() + self.settings.warm_pool_refill_pause_s
        self._changed.set()
        instance = await self._adopt(launch, gateway, written)
        log.info("tenant %s bound to warm gateway %s", tenant_id, gateway.name)
        return instance

    async def _restore(self, tenant_id: str, gateway: WarmGateway) -> list[str]:
        staging = gateway.run_dir / "restore"
        try:
            await asyncio.to_thread(staging.mkdir)
            generation = await self.runtime.state_store.restore_generation(tenant_id, staging)
            blockers = await asyncio.to_thread(agent_state.warm_blockers, staging)
            if not blockers:
                await asyncio.to_thread(_move_carried, staging, gateway.state_dir)
                # Only a completely carried state may later be saved over that snapshot.
                await asyncio.to_thread(mark_restored, gateway.run_dir, generation)
            return blockers
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)

    async def _adopt(self, launch: AgentLaunch, gateway: WarmGateway, written: float) -> Instance:
        runtime = self.runtime
        tenant_id = launch.tenant_id
        link = runtime.root / tenant_id / gateway.name
        await asyncio.to_thread(link.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(link.symlink_to, gateway.run_dir, True)
        instance = Instance(
            name=gateway.name,
            tenant_id=tenant_id,
            phase=InstancePhase.PENDING,
            webhook_url=gateway.webhook_url,
            gateway_url=gateway.gateway_url,
            warm=True,
        )
        agent = _Agent(
            instance=instance,
            proc=gateway.proc,
            run_dir=link,
            ready=asyncio.get_running_loop().create_future(),
        )
        sink = runtime._log(tenant_id)
        hints = ("listener on", "hot reload applied", "ready")

        def to_tenant_log(line: str) -> None:
            sink.write(line)
            if not agent.ready.done() and any(h in line.lower() for h in hints):
                agent.hint.set()

        gateway.sink = to_tenant_log
        runtime._agents[tenant_id] = agent
        sink.write(f"[otm] bound warm gateway {gateway.name} (pid {gateway.proc.pid})")
        agent.tasks = [
            gateway.tasks[0],  # the log pump keeps running, now into the tenant's log
            asyncio.create_task(
                runtime._watch_exit(tenant_id, agent), name=f"agent-exit:{gateway.name}"
            ),
            asyncio.create_task(
                self._probe_bound(agent, launch.webhook_secret, written),
                name=f"agent-probe:{gateway.name}",
            ),
            *runtime.periodic_snapshots(tenant_id, agent),
        ]
        runtime._emit("added", instance)
        return instance

    async def _probe_bound(self, agent: _Agent, secret: str, written: float) -> None:
        """Ready when the tenant's webhook accepts the tenant's secret (see module doc)."""
        url = agent.instance.webhook_url
        assert url is not None
        delay = BIND_PROBE_FIRST_S
        while not agent.ready.done() and not agent.exited.is_set():
            if await self._accepts_secret(url, secret):
                agent.instance = replace(agent.instance, phase=InstancePhase.READY)
                agent.ready.set_result(agent.instance)
                self.runtime._emit("modified", agent.instance)
                self._observe(PHASE_CHANNEL_UP, time.monotonic() - written)
                log.info(
                    "agent %s bound and ready (%.2fs after the config write)",
                    agent.instance.name,
                    time.monotonic() - written,
                )
                return
            await agent.wait_hint(delay)
            delay = min(delay * 2, BIND_PROBE_MAX_S)

    async def _accepts_secret(self, url: str, secret: str) -> bool:
        try:
            async with self.runtime.session.post(
                url,
                data=PROBE_BODY,
                headers={SECRET_HEADER: secret, "Content-Type": "application/json"},
                timeout=PROBE_TIMEOUT,
            ) as resp:
                return resp.status == 400
        except (aiohttp.ClientError, TimeoutError):
            return False


def _write_new(path: Path, config: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh, indent=2)


def _write_atomically(path: Path, config: dict[str, Any]) -> None:
    """tmp + fsync + rename: the gateway's watcher never sees a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _move_carried(staging: Path, state_dir: Path) -> None:
    """The tenant's agent and workspace from its unpacked snapshot into the warm state dir."""
    for relative in agent_state.CARRIED:
        src, dest = staging / relative, state_dir / relative
        if not src.exists():
            continue
        if dest.exists():  # the warm gateway never opens these; leftovers of nothing useful
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
