"""Runtime on local processes: the embedded default (laptop demo, e2e tests).

Each tenant's agent is one process group on 127.0.0.1 with two free ports
(Telegram webhook listener, gateway), its own HOME and state dir under
``{agents_dir}/{id}/{instance}/``, and a rendered ``openclaw.json`` next to
(not inside) the state dir, so the snapshot never carries its secrets. The
default command is the bundled stand-in agent; ``settings.agent_command``
plugs in a real ``openclaw gateway`` instead, and ``settings.agent_model_*``
give it a model (daemon/agent/openclaw_config.py). With ``warm_pool_target`` > 0 a start binds a
pre-booted gateway instead of spawning one (local_warm_pool.py).

State: restored from the StateStore snapshot before start; saved after the
process exited (the final sync of ``stop``, and a post-mortem sync after a
crash or after a daemon restart found an orphaned agent). While it runs, a
history snapshot every ``snapshot_interval_s`` (the latest snapshot untouched).

Readiness (documented choice): the runtime runs a short exponential-backoff
probe (20 ms doubling to 250 ms) of the gateway's ``/readyz`` (JSON
``ready: true``) and the webhook listener's ``/healthz``, woken early by the
agent's own log lines; it resolves a future and emits an InstanceEvent. A real
OpenClaw prints no single reliable ready line, hence the probe; callers never
poll: ``wait_ready`` awaits the future, ``watch`` gets the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from daemon.adapters.local import processes as local_processes
from daemon.adapters.local.agent_ports import AgentPorts
from daemon.adapters.local.logs import LogSink, previous_run
from daemon.adapters.local.processes import NONCE_ENV
from daemon.adapters.local.run_state import (
    restore_run_state,
    save_run_state,
    snapshot_running_state,
)
from daemon.adapters.local.sandbox import AgentSandbox, agent_environment
from daemon.agent.activity import agent_answers, fetch_agent_activity
from daemon.agent.command import command_not_startable, resolve_agent_command
from daemon.agent.openclaw_activity import fetch_openclaw_activity
from daemon.agent.openclaw_config import (
    Listeners,
    model_provider,
    render_openclaw_config,
    tuning_from_settings,
)
from daemon.crash_points import crash_point
from daemon.log_options import DEFAULT_LOG_OPTIONS, LogOptions
from daemon.metrics import COLD, PHASE_CHANNEL_UP, PHASE_RESTORE, Metrics
from daemon.ports import (
    AgentActivity,
    AgentFailed,
    AgentLaunch,
    Instance,
    InstanceEvent,
    InstancePhase,
    StateStore,
)
from daemon.rollout import parse_image_commands
from daemon.settings import ENV_PREFIX, Settings
from daemon.wake_errors import WakeImpossible

if TYPE_CHECKING:
    from daemon.adapters.local.warm_pool import LocalWarmPool

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_AGENT_COMMAND = (sys.executable, "-m", "otm.devtools.agent_stub")
WEBHOOK_PATH = "/telegram-webhook"


def loopback_listeners(ports: AgentPorts) -> Listeners:
    """A local agent's listeners: webhook and gateway on two distinct free ports of
    127.0.0.1 (a loopback gateway: only this host reaches it)."""
    webhook_port, gateway_port = ports.take(2)
    return {
        "webhook_host": "127.0.0.1",
        "webhook_port": webhook_port,
        "webhook_path": WEBHOOK_PATH,
        "gateway_port": gateway_port,
        "gateway_bind": "loopback",
    }


PROBE_FIRST_S = 0.02
PROBE_MAX_S = 0.25
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2)
OPENCLAW_TIMEOUT_S = 4.0
PID_FILE = "agent.pid"
ORPHAN_GRACE_S = 10.0
"""SIGTERM to SIGKILL for an agent a crashed daemon left (bounded: it delays a start-up)."""
OPENCLAW_FILE_LOG = "openclaw-file.log"
_READY_HINTS = ("ready", "listener on", "listening")
_DAEMON_SETTING_VARS = frozenset(ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings))


@dataclass
class _Agent:
    instance: Instance
    proc: asyncio.subprocess.Process
    run_dir: Path
    ready: asyncio.Future[Instance]
    exited: asyncio.Event = field(default_factory=asyncio.Event)
    hint: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    spawned_at: float = field(default_factory=time.monotonic)
    gateway_token: str = ""

    @property
    def state_dir(self) -> Path:
        return self.run_dir / "state"

    async def wait_hint(self, delay: float) -> None:
        """Up to ``delay`` seconds, less if its log hints it may be ready (``hint``)."""
        self.hint.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self.hint.wait()


class LocalRuntime:
    def __init__(
        self,
        *,
        settings: Settings,
        state_store: StateStore,
        session: aiohttp.ClientSession,
        webhook_url_for: Callable[[str], str],
    ) -> None:
        self.settings = settings
        self.state_store = state_store
        self.session = session
        self.webhook_url_for = webhook_url_for
        self.command = (
            resolve_agent_command(settings.agent_command, Path.cwd()) or DEFAULT_AGENT_COMMAND
        )
        self.image_commands = {
            image: resolve_agent_command(words, Path.cwd())
            for image, words in parse_image_commands(settings.agent_image_commands).items()
        }
        """Locally an image is a command (setting ``agent_image_commands``)."""
        self.root = settings.agents_dir
        self.sandbox = AgentSandbox.resolve(settings.agent_sandbox, settings.data_dir)
        self.agent_ports = AgentPorts.from_setting(
            settings.local_agent_ports, hold_s=settings.wake_timeout_s
        )
        self._agents: dict[str, _Agent] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._logs: dict[str, LogSink] = {}
        self._watchers: set[asyncio.Queue[InstanceEvent | None]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self.warm_pool: LocalWarmPool | None = None
        """Pre-booted gateways a start binds instead of spawning (local_warm_pool.py)."""
        self.metrics: Metrics | None = None

    @classmethod
    async def open(
        cls,
        *,
        settings: Settings,
        state_store: StateStore,
        session: aiohttp.ClientSession,
        webhook_url_for: Callable[[str], str],
    ) -> LocalRuntime:
        """The runtime, with the agents a previous daemon left running recovered."""
        runtime = cls(
            settings=settings,
            state_store=state_store,
            session=session,
            webhook_url_for=webhook_url_for,
        )
        await runtime.recover()
        return runtime

    def command_for(self, image: str | None) -> tuple[str, ...]:
        """The command that runs ``image`` here: its ``agent_image_commands`` entry, else
        ``agent_command`` for the default image (or none); another image cannot run."""
        if image is not None and image in self.image_commands:
            return self.image_commands[image]
        if image is None or image == self.settings.agent_image:
            return self.command
        raise WakeImpossible(
            f"image {image!r} has no local agent command (agent_image_commands lists "
            f"{', '.join(sorted(self.image_commands)) or 'none'})"
        )

    def _lock(self, tenant_id: str) -> asyncio.Lock:
        return self._locks.setdefault(tenant_id, asyncio.Lock())

    def _log(self, tenant_id: str) -> LogSink:
        sink = self._logs.get(tenant_id)
        if sink is None:
            sink = self._logs[tenant_id] = LogSink(self.root / tenant_id / "agent.log")
        return sink

    # -- start ----------------------------------------------------------------------
    async def start(self, launch: AgentLaunch) -> Instance:
        tenant_id = launch.tenant_id
        async with self._lock(tenant_id):
            agent = self._agents.get(tenant_id)
            if agent is not None and not agent.stopping:
                return agent.instance
            command = self.command_for(launch.image)
            await self._sync_leftovers(tenant_id)
            if self.warm_pool is not None:
                bound = await self.warm_pool.claim(launch)
                if bound is not None:
                    return bound
            started = time.monotonic()
            name = f"{tenant_id}-{secrets.token_hex(3)}"
            run_dir = self.root / tenant_id / name
            state_dir = run_dir / "state"
            (run_dir / "home").mkdir(parents=True)
            crash_point("wake-run-dir")
            generation = await restore_run_state(self.state_store, tenant_id, run_dir)
            restored = generation != "none"
            self._observe(PHASE_RESTORE, COLD, time.monotonic() - started)
            listeners = loopback_listeners(self.agent_ports)
            config_path = run_dir / "openclaw.json"
            config = render_openclaw_config(
                tenant_id=tenant_id,
                bot_token=launch.bot_token,
                webhook_url=self.webhook_url_for(tenant_id),
                webhook_secret=launch.webhook_secret,
                **listeners,
                api_root=launch.api_root or self.settings.telegram_api_base,
                gateway_token=launch.gateway_token,
                hooks_token=launch.hooks_token,
                workspace_dir=str(state_dir / "workspace"),
                model_provider=model_provider(self.settings, launch.model_key),
                tuning=tuning_from_settings(self.settings),
            )
            # OpenClaw's file log defaults to the host-wide /tmp/openclaw, shared by every
            # tenant; the run dir keeps it per agent (stdout goes to agent.log anyway).
            config["logging"] = {"file": str(run_dir / OPENCLAW_FILE_LOG)}
            fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(config, fh, indent=2)
            try:
                proc = await self.spawn(run_dir, state_dir, config_path, command)
            except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
                error = command_not_startable(command, exc)
                self._log(tenant_id).write(f"[otm] {error}")  # `otm logs` says why
                raise error from None
            instance = Instance(
                name=name,
                tenant_id=tenant_id,
                phase=InstancePhase.PENDING,
                webhook_url=f"http://127.0.0.1:{listeners['webhook_port']}{WEBHOOK_PATH}",
                gateway_url=f"http://127.0.0.1:{listeners['gateway_port']}",
            )
            agent = _Agent(
                instance=instance,
                proc=proc,
                run_dir=run_dir,
                ready=asyncio.get_running_loop().create_future(),
                gateway_token=launch.gateway_token,
            )
            self._agents[tenant_id] = agent
            self._log(tenant_id).write(
                f"[otm] starting {name} (pid {proc.pid}, state {'restored' if restored else 'new'}"
                f", image {launch.image or self.settings.agent_image})"
            )
            agent.tasks = [
                asyncio.create_task(self._pump(tenant_id, agent), name=f"agent-log:{name}"),
                asyncio.create_task(self._watch_exit(tenant_id, agent), name=f"agent-exit:{name}"),
                asyncio.create_task(self._probe(tenant_id, agent), name=f"agent-probe:{name}"),
                *self.periodic_snapshots(tenant_id, agent),
            ]
            self._emit("added", instance)
            log.info("agent %s started (pid %d)", name, proc.pid)
            return instance

    async def spawn(
        self, run_dir: Path, state_dir: Path, config_path: Path, command: tuple[str, ...]
    ) -> asyncio.subprocess.Process:
        """Start ``command`` (an image's, ``command_for``) on a prepared run dir and record
        its pid file (also used by the warm pool, so both paths run agents the same way)."""
        nonce = secrets.token_hex(8)
        env = self._agent_env(run_dir, state_dir, config_path, nonce, command)
        if shutil.which(command[0], path=env.get("PATH")) is None:
            # Checked here: inside the sandbox a missing command is only an exit status.
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), command[0])
        # The marker first: a daemon killed right after the spawn finds the process by it.
        await asyncio.to_thread(local_processes.write_instance_marker, run_dir, nonce)
        proc = await asyncio.create_subprocess_exec(
            *self.sandbox.command(command, run_dir, env.get("PYTHONPATH", "").split(os.pathsep)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=run_dir,
            env=env,
            start_new_session=True,  # own process group: stop kills its children too
            limit=1 << 20,
        )
        crash_point("wake-spawned")
        (run_dir / PID_FILE).write_text(f"{proc.pid} {nonce}\n")
        return proc

    def _observe(self, phase: str, path: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.agent_start_phase_seconds.labels(phase=phase, path=path).observe(seconds)

    def _agent_env(
        self, run_dir: Path, state_dir: Path, config: Path, nonce: str, command: tuple[str, ...]
    ) -> dict[str, str]:
        # An allow-list (local_sandbox): no daemon setting (admin token, model API key),
        # no cloud credentials; OTM_AGENT_* knobs are meant for the agent (stand-in boot delay).
        env = agent_environment(os.environ, _DAEMON_SETTING_VARS)
        python_path = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        path = [*filter(None, env.get("PATH", "").split(os.pathsep))]
        if os.path.isabs(command[0]):
            # A gateway run by an absolute node binary spawns helpers (npm, node) by name:
            # they must come from the same installation, not an older system Node.
            path.insert(0, os.path.dirname(command[0]))
        env.update(
            {
                "HOME": str(run_dir / "home"),
                "PATH": os.pathsep.join(dict.fromkeys(path)),
                "OPENCLAW_STATE_DIR": str(state_dir),
                "OPENCLAW_CONFIG_PATH": str(config),
                # otm renders the config on every start; the gateway must not rewrite it.
                "OPENCLAW_CONFIG_READONLY": "1",
                "OPENCLAW_NO_AUTO_UPDATE": "1",
                "OPENCLAW_DISABLE_BONJOUR": "1",
                # agent.log is a file: no ANSI colours (OpenClaw colours its console otherwise).
                "NO_COLOR": "1",
                "PYTHONPATH": os.pathsep.join(dict.fromkeys(python_path)),
                "PYTHONUNBUFFERED": "1",
                NONCE_ENV: nonce,
            }
        )
        return env

    async def _pump(self, tenant_id: str, agent: _Agent) -> None:
        sink = self._log(tenant_id)
        stream = agent.proc.stdout
        assert stream is not None
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line beyond the limit: take what is there
                raw = await stream.read(1 << 20)
            if not raw:
                break
            line = raw.decode("utf-8", errors="replace")
            sink.write(line)
            if not agent.ready.done() and any(h in line.lower() for h in _READY_HINTS):
                agent.hint.set()
        sink.end_of_run()

    async def _probe(self, tenant_id: str, agent: _Agent) -> None:
        delay = PROBE_FIRST_S
        gateway, webhook = agent.instance.gateway_url, agent.instance.webhook_url
        assert gateway is not None and webhook is not None
        health = webhook.rsplit("/", 1)[0] + "/healthz"
        while not agent.ready.done() and not agent.exited.is_set():
            if await self._answers(f"{gateway}/readyz", json_ready=True) and await self._answers(
                health
            ):
                agent.instance = replace(agent.instance, phase=InstancePhase.READY)
                if not agent.ready.done():
                    agent.ready.set_result(agent.instance)
                self._emit("modified", agent.instance)
                self._observe(PHASE_CHANNEL_UP, COLD, time.monotonic() - agent.spawned_at)
                log.info("agent %s ready", agent.instance.name)
                return
            await agent.wait_hint(delay)
            delay = min(delay * 2, PROBE_MAX_S)

    async def _answers(self, url: str, *, json_ready: bool = False) -> bool:
        return await agent_answers(self.session, url, PROBE_TIMEOUT, json_ready=json_ready)

    def periodic_snapshots(self, tenant_id: str, agent: _Agent) -> list[asyncio.Task[None]]:
        """The agent's periodic history snapshots (none when ``snapshot_interval_s`` is 0)."""
        interval = self.settings.snapshot_interval_s
        if interval <= 0:
            return []
        name = f"agent-snapshots:{agent.instance.name}"
        return [asyncio.create_task(self._snapshot_every(tenant_id, agent, interval), name=name)]

    async def _snapshot_every(self, tenant_id: str, agent: _Agent, interval: float) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(agent.exited.wait(), timeout=interval)
            if agent.exited.is_set() or agent.stopping:
                return  # the final save on stop covers the rest
            try:
                taken = await snapshot_running_state(self.state_store, tenant_id, agent.run_dir)
            except Exception as exc:  # the next interval tries again; sleep still saves
                log.warning("periodic snapshot of %s failed: %s", tenant_id, exc)
                continue
            if taken is not None:
                log.info("periodic snapshot of %s: %s (%d bytes)", tenant_id, taken.key, taken.size)

    async def _watch_exit(self, tenant_id: str, agent: _Agent) -> None:
        code = await agent.proc.wait()
        agent.exited.set()
        expected = agent.stopping
        reason = f"agent exited with code {code}"
        phase = InstancePhase.GONE if expected else InstancePhase.FAILED
        agent.instance = replace(agent.instance, phase=phase, reason=reason)
        if not agent.ready.done():
            agent.ready.set_exception(AgentFailed(reason))
            agent.ready.exception()  # retrieved here; waiters get their own raise
        if self._agents.get(tenant_id) is agent:
            del self._agents[tenant_id]
        self._emit("deleted", agent.instance)
        if expected:
            self._log(tenant_id).write(f"[otm] {agent.instance.name} stopped: {reason}")
            return
        log.warning("agent %s of %s died: %s", agent.instance.name, tenant_id, reason)
        self._log(tenant_id).write(f"[otm] {agent.instance.name}: {reason}")
        # Post-mortem sync: what the agent persisted before dying is its state.
        async with self._lock(tenant_id):
            try:
                await self._sync_run_dir(tenant_id, agent.run_dir)
            except Exception as exc:  # kept: the next start or stop saves it again
                log.error("state of %s not saved after its agent died: %s", tenant_id, exc)

    # -- readiness / queries ----------------------------------------------------------
    async def wait_ready(self, tenant_id: str, timeout: float) -> Instance:
        agent = self._agents.get(tenant_id)
        if agent is None:
            raise AgentFailed(f"tenant {tenant_id!r} has no agent")
        async with asyncio.timeout(timeout):
            return await asyncio.shield(agent.ready)

    async def get(self, tenant_id: str) -> Instance | None:
        agent = self._agents.get(tenant_id)
        return agent.instance if agent is not None else None

    async def list(self) -> list[Instance]:
        return [agent.instance for agent in self._agents.values()]

    async def activity(self, tenant_id: str) -> AgentActivity | None:
        agent = self._agents.get(tenant_id)
        if agent is None or agent.instance.gateway_url is None:
            return None
        gateway = agent.instance.gateway_url
        activity = await fetch_agent_activity(self.session, gateway, PROBE_TIMEOUT)
        if activity is None and agent.gateway_token:
            # A real OpenClaw: its session index says whether a turn runs.
            activity = await fetch_openclaw_activity(
                self.session, gateway, agent.gateway_token, OPENCLAW_TIMEOUT_S
            )
        return activity

    async def watch(self) -> AsyncIterator[InstanceEvent]:
        queue: asyncio.Queue[InstanceEvent | None] = asyncio.Queue()
        self._watchers.add(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._watchers.discard(queue)

    def _emit(self, kind: str, instance: Instance) -> None:
        event = InstanceEvent(kind=kind, instance=instance)
        for queue in self._watchers:
            queue.put_nowait(event)

    async def logs(
        self,
        tenant_id: str,
        *,
        follow: bool,
        since_s: float | None,
        options: LogOptions = DEFAULT_LOG_OPTIONS,
    ) -> AsyncIterator[str]:
        if options.container != "gateway":
            raise ValueError("the local runtime runs one process per agent: only -c gateway")
        sink = self._log(tenant_id)
        if not sink.path.exists():
            raise KeyError(tenant_id)
        if options.previous:
            # The run before the latest one (each run starts with "[otm] starting").
            history = [line async for line in sink.lines(follow=False, since_s=None, running=False)]
            for line in previous_run(history):
                yield line
            return
        async for line in sink.lines(
            follow=follow, since_s=since_s, running=tenant_id in self._agents
        ):
            yield line

    # -- stop -------------------------------------------------------------------------
    async def stop(self, tenant_id: str, *, grace_s: float) -> None:
        async with self._lock(tenant_id):
            agent = self._agents.get(tenant_id)
            if agent is not None:
                await self._terminate(tenant_id, agent, grace_s)
            await self._sync_leftovers(tenant_id)

    async def _terminate(self, tenant_id: str, agent: _Agent, grace_s: float) -> None:
        agent.stopping = True
        agent.instance = replace(agent.instance, phase=InstancePhase.STOPPING)
        self._emit("modified", agent.instance)
        self._log(tenant_id).write(f"[otm] stopping {agent.instance.name} (grace {grace_s:.0f}s)")
        _signal_group(agent.proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(grace_s):
                await agent.exited.wait()
        except TimeoutError:
            log.warning("agent %s ignored SIGTERM for %.0fs; killing", agent.instance.name, grace_s)
            _signal_group(agent.proc.pid, signal.SIGKILL)
            await agent.exited.wait()
        # The group may hold children that outlived the leader, and children that left
        # the group (setsid) still carry the instance marker.
        _signal_group(agent.proc.pid, signal.SIGKILL)
        await local_processes.end_run_dir_processes(agent.run_dir, grace_s=0)
        for task in agent.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=5)

    async def _sync_leftovers(self, tenant_id: str) -> None:
        """Save and remove every run dir of the tenant that no live agent owns
        (caller holds the tenant lock), oldest first so the newest state wins."""
        tenant_dir = self.root / tenant_id
        live = self._agents.get(tenant_id)
        if not tenant_dir.is_dir():
            return
        owned = live.run_dir if live is not None else None
        runs = [p for p in tenant_dir.iterdir() if p.is_dir() and p != owned]
        for run_dir in sorted(runs, key=lambda p: p.stat().st_mtime):
            # Only this daemon runs agents on the data dir (its lock): whatever still
            # runs here was left by a crashed one, and is ended before its state is saved.
            await local_processes.end_run_dir_processes(run_dir, ORPHAN_GRACE_S)
            await self._sync_run_dir(tenant_id, run_dir)

    async def _sync_run_dir(self, tenant_id: str, run_dir: Path) -> None:
        """Save (if it was fully restored) then remove; a failed save raises and keeps it."""
        await save_run_state(self.state_store, tenant_id, run_dir)
        await asyncio.to_thread(_remove_run_dir, run_dir)

    # -- daemon start / stop ---------------------------------------------------------------
    async def recover(self) -> None:
        """After a daemon crash: end orphaned agents of ours, save their state."""
        if not self.root.is_dir():
            return
        for tenant_dir in self.root.iterdir():
            if tenant_dir.is_dir():
                async with self._lock(tenant_dir.name):
                    try:
                        await self._sync_leftovers(tenant_dir.name)
                    except Exception as exc:  # kept on disk; the tenant's next wake retries
                        log.error("state of %s not saved at start-up: %s", tenant_dir.name, exc)

    async def close(self) -> None:
        if self.warm_pool is not None:
            await self.warm_pool.close()
        grace = min(self.settings.agent_stop_grace_s, 15.0)
        await asyncio.gather(
            *(self.stop(tenant_id, grace_s=grace) for tenant_id in list(self._agents)),
            return_exceptions=True,
        )
        for queue in self._watchers:
            queue.put_nowait(None)
        for sink in self._logs.values():
            sink.close()


def _remove_run_dir(run_dir: Path) -> None:
    if run_dir.is_symlink():  # a bound warm gateway: its run dir lives in the pool's dir
        shutil.rmtree(run_dir.resolve(), True)
        run_dir.unlink(missing_ok=True)
    else:
        shutil.rmtree(run_dir, True)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def recorded_agent_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file`` if that process is still our agent."""
    try:
        pid_text, nonce = pid_file.read_text().split()
        pid = int(pid_text)
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except (OSError, ValueError):
        return None  # gone, unreadable, or not ours to inspect
    if f"{NONCE_ENV}={nonce}".encode() not in environ.split(b"\0"):
        return None  # the pid was reused by an unrelated process
    return pid
