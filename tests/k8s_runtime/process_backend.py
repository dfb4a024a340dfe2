"""A fake-kubelet pod backend that runs each pod as real local processes.

* Tenant pods: the stand-in agent (otm.devtools.agent_stub) with the openclaw.json from the
  pod's Secret volume, as the gateway container would read it. With a StateStore, the S3
  containers are emulated: the state-restore init container copies the tenant's
  ``state/``/``workspace/`` keys in before the agent starts, and the sync sidecar's final sync
  copies them back once the agent has exited (before the pod's deletion completes).
* Warm pods: the pod's own container command (the Node bootstrap from warm_bootstrap.py),
  whose gateway is the stand-in agent (or a real OpenClaw) behind gateway_shim, which
  mirrors each rewrite of the pod's openclaw.json onto loopback ports; the gateway
  hot-reloads it. It boots at pod start on the warm config Secret.
  With ``warm_s3`` (endpoint, bucket), the warm sync sidecar is emulated with the
  credentials the bind wrote to ``tenant.env``: after the bind it restores the tenant's
  ``state/agents/main/`` and ``workspace/`` (pod_scripts.WARM_SYNCED) and marks
  ``restored``; at stop it uploads them back, re-reading ``tenant.env`` first.

Container env comes from the pod spec: literal values, ``metadata.name`` fieldRefs, and
secretKeyRefs resolved against the fake's store, as a kubelet does. Readiness and liveness
are the fake kubelet's: it runs the pod spec's httpGet probes against these processes
through the port map.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shlex
import signal
import sys
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from daemon.embedded_redis import free_port
from daemon.kube import manifests as m
from daemon.kube import names
from daemon.kube.pod_scripts import WARM_SYNCED
from daemon.ports import StateStore
from tests.k8s_runtime.gateway_shim import loopback_config
from tests.support.fake_k8s import SECRETS, PodContext, PodStarted, Store
from tests.support.servers import project_env

AGENT = [sys.executable, "-m", "otm.devtools.agent_stub"]
PROBE_INTERVAL_S = 0.05
STARTUP_TIMEOUT_S = 20.0


@dataclass
class _Running:
    proc: asyncio.subprocess.Process
    tenant_id: str | None
    state_dir: Path
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    stopping: bool = False
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    bind_dir: Path | None = None
    """Warm pods: where the bootstrap writes tenant.env and the sidecar its markers."""


# What the sync scripts leave out (daemon/kube/manifests.py): config, locks, caches.
def _synced(relative: str) -> bool:
    top = relative.split("/", 1)[0]
    name = relative.rsplit("/", 1)[-1]
    return not (
        name == "openclaw.json"
        or name.startswith("openclaw.json.")
        or name.endswith(".lock")
        or name.endswith("-shm")
        or top in ("cache", "tmp")
    )


@dataclass(eq=False)
class ProcessPodBackend:
    root: Path
    state_store: StateStore | None = None
    _: KW_ONLY
    warm_s3: tuple[str, str] | None = None
    warm_gateway: list[str] | None = None
    """A warm pod's gateway command (default: the stand-in agent). Both hot-reload the
    config rewrites gateway_shim mirrors to them: one gateway process per pod."""
    startup_timeout_s: float = STARTUP_TIMEOUT_S
    tenant_gateway: list[str] | None = None
    """A cold tenant pod's gateway command (default: the stand-in agent)."""
    store: Store | None = field(default=None, init=False)  # set once the fake server exists
    agent_env: dict[str, str] = field(default_factory=dict, init=False)
    """Extra env for agents started from now on (stand-in knobs such as a boot delay);
    passed explicitly because project_env() keeps the test process's OTM_* out."""
    _pods: dict[str, _Running] = field(default_factory=dict, init=False, repr=False)

    def _secret_value(self, namespace: str, name: str, key: str) -> str:
        assert self.store is not None, "ProcessPodBackend.store is not set"
        secret = self.store.get(SECRETS, namespace, name)
        return base64.b64decode(secret["data"][key]).decode()

    def _env(self, ctx: PodContext, container: dict[str, Any]) -> dict[str, str]:
        env = project_env(**self.agent_env)
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = str(item["value"])
            elif "fieldRef" in item["valueFrom"]:  # downward API: only what pods use
                field_path = item["valueFrom"]["fieldRef"]["fieldPath"]
                assert field_path == "metadata.name", f"unsupported fieldRef {field_path}"
                env[item["name"]] = ctx.pod["metadata"]["name"]
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = self._secret_value(ctx.namespace, ref["name"], ref["key"])
        return env

    async def start(self, ctx: PodContext) -> PodStarted:
        pod = ctx.pod
        (container,) = pod["spec"]["containers"]
        run_dir = self.root / ctx.uid
        for sub in ("home", "state", "bind"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
        gateway_port, webhook_port = free_port(), free_port()
        env = self._env(ctx, container)
        env.update(HOME=str(run_dir / "home"), OPENCLAW_STATE_DIR=str(run_dir / "state"))
        tenant_id = pod["metadata"]["labels"].get(names.LABEL_TENANT)
        if tenant_id is not None:
            await self._restore(tenant_id, run_dir / "state")
        warm = pod["metadata"]["labels"].get(names.LABEL_WARM) == "true"
        ports = {
            names.OPENCLAW_GATEWAY_PORT: gateway_port,
            names.OPENCLAW_WEBHOOK_PORT: webhook_port,
        }
        if warm:
            shim = [sys.executable, "-m", "tests.k8s_runtime.gateway_shim"]
            bind_port = free_port()
            ports[names.WARM_BIND_PORT] = bind_port
            warm_config = run_dir / "warm-openclaw.json"
            warm_config.write_text(
                self._secret_value(ctx.namespace, m.WARM_CONFIG_SECRET, m.CONFIG_KEY)
            )
            env.update(
                OTM_BIND_HOST="127.0.0.1",
                OTM_BIND_PORT=str(bind_port),
                OTM_BIND_DIR=str(run_dir / "bind"),
                OTM_WARM_CONFIG=str(warm_config),
                OPENCLAW_CONFIG_PATH=str(run_dir / "bind" / "openclaw.json"),
                OTM_WAIT_RESTORE="1" if self.warm_s3 else "0",
                OTM_PROBE_GATEWAY_PORT=str(gateway_port),
                OTM_PROBE_WEBHOOK_PORT=str(webhook_port),
                OTM_SHIM_MIRROR="1",
                OTM_GATEWAY_COMMAND=json.dumps(
                    [*shim, str(gateway_port), str(webhook_port), "--"]
                    + (self.warm_gateway or AGENT)
                ),
            )
            argv = list(container["command"])
        else:
            (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "config"]
            text = self._secret_value(
                ctx.namespace, volume["secret"]["secretName"], "openclaw.json"
            )
            state_dir = str(run_dir / "state")
            config = loopback_config(json.loads(text), gateway_port, webhook_port, state_dir)
            if self.tenant_gateway:  # a real gateway's file log stays out of /tmp/openclaw
                config["logging"] = {"file": str(run_dir / "openclaw-file.log")}
            config_path = run_dir / "openclaw.json"
            config_path.write_text(json.dumps(config))
            env["OPENCLAW_CONFIG_PATH"] = str(config_path)
            argv = self.tenant_gateway or AGENT
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            cwd=run_dir / "home",  # the image's WORKDIR stand-in
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        running = _Running(proc, tenant_id, run_dir / "state")
        if warm:
            running.bind_dir = run_dir / "bind"
        self._pods[ctx.uid] = running
        running.tasks = [
            asyncio.create_task(self._pump_logs(ctx, proc)),
            asyncio.create_task(self._watch_exit(ctx, running)),
        ]
        if warm and self.warm_s3:
            running.tasks.append(asyncio.create_task(self._warm_restore(running)))
        # The kubelet's startupProbe: the container counts as started once /healthz answers.
        await self._wait_healthy(running, gateway_port)
        return PodStarted(pod_ip="127.0.0.1", ports=ports, ready=False)

    async def _wait_healthy(self, running: _Running, port: int) -> None:
        url = f"http://127.0.0.1:{port}/healthz"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
            for _ in range(round(self.startup_timeout_s / PROBE_INTERVAL_S)):
                if running.proc.returncode is not None:
                    return  # the exit watcher reports it
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url) as resp:
                        if resp.status == 200:
                            return
                await asyncio.sleep(PROBE_INTERVAL_S)
        raise RuntimeError(f"startup probe on {url} never passed")

    async def _pump_logs(self, ctx: PodContext, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            ctx.write_log(line.decode(errors="replace"))

    async def _restore(self, tenant_id: str, state_dir: Path) -> None:
        if self.state_store is None:
            return
        for key in await self.state_store.list(tenant_id):
            top, _, rest = key.partition("/")
            if top not in ("state", "workspace") or not rest:
                continue
            target = state_dir / rest if top == "state" else state_dir / "workspace" / rest
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(await self.state_store.get(tenant_id, key))

    # -- the warm sync sidecar, emulated with the credentials of tenant.env ---------------

    def _tenant_s3(self, bind_dir: Path) -> tuple[Any, str, str]:
        """(client, bucket, prefix) as the sidecar's aws-cli would have them."""
        import boto3

        assert self.warm_s3 is not None
        values: dict[str, str] = {}
        for line in (bind_dir / "tenant.env").read_text().splitlines():
            key, _, raw = line.partition("=")
            values[key] = shlex.split(raw)[0] if raw else ""
        endpoint, bucket = self.warm_s3
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=values["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=values["AWS_SESSION_TOKEN"],
        )
        return client, bucket, values["S3_PREFIX"]

    async def _warm_restore(self, running: _Running) -> None:
        bind_dir = running.bind_dir
        assert bind_dir is not None
        # A file, not an event: the sidecar polls for it the same way.
        while not (bind_dir / "tenant.env").exists():  # noqa: ASYNC110
            await asyncio.sleep(PROBE_INTERVAL_S)

        def download() -> None:
            client, bucket, prefix = self._tenant_s3(bind_dir)
            for sub in WARM_SYNCED:
                pages = client.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=prefix + sub
                )
                for page in pages:
                    for obj in page.get("Contents", []):
                        rest = obj["Key"][len(prefix) :]
                        top, _, tail = rest.partition("/")
                        local = running.state_dir / (tail if top == "state" else rest)
                        local.parent.mkdir(parents=True, exist_ok=True)
                        body = client.get_object(Bucket=bucket, Key=obj["Key"])["Body"]
                        local.write_bytes(body.read())

        try:
            await asyncio.to_thread(download)
        except Exception:
            (bind_dir / "restore-failed").touch()
            raise
        (bind_dir / "restored").touch()

    def _warm_upload(self, running: _Running) -> None:
        bind_dir = running.bind_dir
        assert bind_dir is not None
        if not (bind_dir / "restored").exists():
            return  # an unbound warm pod has nothing to save
        client, bucket, prefix = self._tenant_s3(bind_dir)
        for sub in WARM_SYNCED:
            top, _, tail = sub.partition("/")
            local_root = running.state_dir / tail if top == "state" else running.state_dir / sub
            for path in sorted(local_root.rglob("*")):
                if path.is_file() and _synced(path.relative_to(running.state_dir).as_posix()):
                    key = prefix + sub + path.relative_to(local_root).as_posix()
                    client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())

    async def _final_sync(self, running: _Running) -> None:
        """The sidecar's preStop sync, once the agent has exited."""
        if running.synced.is_set():
            return
        if running.bind_dir is not None and self.warm_s3 is not None:
            try:
                await asyncio.to_thread(self._warm_upload, running)
            finally:
                running.synced.set()
            return
        try:
            if self.state_store is not None and running.tenant_id is not None:
                for path in sorted(running.state_dir.rglob("*")):
                    relative = path.relative_to(running.state_dir).as_posix()
                    if not path.is_file() or not _synced(relative):
                        continue
                    top, _, rest = relative.partition("/")
                    key = f"workspace/{rest}" if top == "workspace" else f"state/{relative}"
                    await self.state_store.put(running.tenant_id, key, path.read_bytes())
        finally:
            running.synced.set()

    async def _watch_exit(self, ctx: PodContext, running: _Running) -> None:
        code = await running.proc.wait()
        await self._final_sync(running)
        if not running.stopping:
            ctx.report_exit(code, "Error" if code else "Completed")

    async def kill_tenant(self, tenant_id: str) -> None:
        """Crash a tenant's agent (SIGKILL to its process group)."""
        for running in self._pods.values():
            if running.tenant_id == tenant_id and running.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(running.proc.pid, signal.SIGKILL)

    async def stop(self, ctx: PodContext, grace_seconds: float) -> None:
        running = self._pods.pop(ctx.uid, None)
        if running is None:
            return
        running.stopping = True
        for task in running.tasks[2:]:  # the warm sidecar's restore
            task.cancel()
        proc = running.proc
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), min(grace_seconds, 10.0))
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        await asyncio.wait_for(running.synced.wait(), 10.0)
        for task in running.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        for uid in list(self._pods):
            running = self._pods[uid]
            running.stopping = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(running.proc.pid, signal.SIGKILL)
            await running.proc.wait()
            for task in running.tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._pods.clear()
