"""What a kubelet does before a pod's containers run, and how it fails:

* image pull: an image the node cannot pull leaves its container waiting `ErrImagePull`,
  then `ImagePullBackOff` while the kubelet backs off, retrying. The fake cannot pull
  anything, so it needs a rule for "unpullable": an image whose registry host ends in
  `.invalid` (a reserved TLD that never resolves, on a real cluster either), or one a test
  listed with `FakeKubernetes.set_image_pullable(image, False)`.
* configuration: a missing Secret/ConfigMap (or key) named by `env[].valueFrom` or
  `envFrom` leaves the container waiting `CreateContainerConfigError` (retried: creating
  the object later lets the pod start); a missing Secret/ConfigMap volume keeps the pod
  in `ContainerCreating` with `FailedMount` events, as on a real node.
* init containers run one after the other (native sidecars, `restartPolicy: Always`, just
  start); one that fails is retried with back-off (`CrashLoopBackOff` on its status, which
  `kubectl` shows as `Init:CrashLoopBackOff`), or fails the pod under `restartPolicy: Never`.

Back-off doubles from `KubeletConfig.backoff_initial` to `backoff_max` (a real kubelet:
10 s to 300 s; short here so tests see several rounds).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from . import podstatus
from .defaults import rfc3339
from .podenv import ConfigError, Lookup, container_env, volume_files

if TYPE_CHECKING:
    from .kubelet import Kubelet, PodRuntime

JSON = dict[str, Any]


def image_host(image: str) -> str:
    """The registry host of an image reference ("" for Docker Hub short names)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first.split(":")[0]
    return ""


def image_pullable(image: str, unpullable: set[str]) -> bool:
    return image not in unpullable and not image_host(image).endswith(".invalid")


def backoff_delay(initial: float, maximum: float, failures: int) -> float:
    """The wait after the `failures`-th consecutive failure (1-based)."""
    return float(min(initial * 2 ** max(failures - 1, 0), maximum))


def scripted_exit_code(container: JSON) -> int | None:
    """`sh -c "exit N"`: the exit code a container running only that script ends with (the
    simulated backend honours it, so crash tests run unchanged on a real cluster)."""
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    if len(argv) == 3 and argv[0] in ("sh", "/bin/sh") and argv[1] == "-c":
        words = argv[2].split()
        if len(words) == 2 and words[0] == "exit" and words[1].isdigit():
            return int(words[1])
    return None


def _containers(pod: JSON) -> list[tuple[JSON, bool]]:
    spec = pod.get("spec") or {}
    return [(c, True) for c in spec.get("initContainers") or []] + [
        (c, False) for c in spec.get("containers") or []
    ]


def pull_problem(pod: JSON, unpullable: set[str]) -> JSON | None:
    for container, _ in _containers(pod):
        if not image_pullable(container.get("image", ""), unpullable):
            return container
    return None


def config_problem(lookup: Lookup, pod: JSON) -> tuple[str, str] | None:
    """(container, message) for the first container whose env cannot be built."""
    for container, _ in _containers(pod):
        try:
            container_env(lookup, pod, container["name"])
        except ConfigError as exc:
            return container["name"], str(exc)
    return None


def mount_problem(lookup: Lookup, pod: JSON) -> tuple[str, str] | None:
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if "secret" in volume or "configMap" in volume:
            try:
                volume_files(lookup, pod, volume["name"])
            except ConfigError as exc:
                return volume["name"], str(exc)
    return None


async def prepare_pod(kubelet: Kubelet, runtime: PodRuntime) -> bool:
    """Pull, configure and initialize until the main containers can start (True), or the
    pod failed for good (False). Cancelled when the pod is deleted."""
    config = kubelet.config
    failures = 0

    async def back_off() -> None:
        nonlocal failures
        failures += 1
        await asyncio.sleep(backoff_delay(config.backoff_initial, config.backoff_max, failures))

    def waiting(container: str, reason: str, message: str) -> None:
        kubelet.write(runtime, lambda p: podstatus.mark_waiting(p, container, reason, message))

    while True:
        pod, lookup = runtime.ctx.pod, kubelet.lookup
        if (bad := pull_problem(pod, kubelet.unpullable_images)) is not None:
            image = bad.get("image", "")
            message = f'failed to pull image "{image}": lookup {image_host(image)}: no such host'
            waiting(bad["name"], "ErrImagePull", message)
            kubelet.record_event(runtime, "Failed", message, warning=True)
            await back_off()
            waiting(bad["name"], "ImagePullBackOff", f'Back-off pulling image "{image}"')
            await back_off()
            continue
        if (mount := mount_problem(lookup, pod)) is not None:
            volume, why = mount
            message = f'MountVolume.SetUp failed for volume "{volume}" : {why}'
            kubelet.record_event(runtime, "FailedMount", message, warning=True)
            await back_off()
            continue
        if (problem := config_problem(lookup, pod)) is not None:
            name, why = problem
            waiting(name, "CreateContainerConfigError", why)
            kubelet.record_event(runtime, "Failed", f"Error: {why}", warning=True)
            await back_off()
            continue
        break
    return await _run_init_containers(kubelet, runtime)


async def _run_init_containers(kubelet: Kubelet, runtime: PodRuntime) -> bool:
    pod = runtime.ctx.pod
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    config = kubelet.config

    def show(current: str | None, state: JSON, waiting: tuple[str, str] | None = None) -> None:
        def change(p: JSON) -> None:
            podstatus.init_statuses(p, runtime.init_restarts, current, state)
            if waiting is not None and current is not None:
                podstatus.mark_waiting(p, current, *waiting)

        kubelet.write(runtime, change)

    for container in (pod.get("spec") or {}).get("initContainers") or []:
        name = container["name"]
        if container.get("restartPolicy") == "Always":
            continue  # a native sidecar: started, runs alongside
        failures = 0
        while True:
            show(name, {"running": {"startedAt": rfc3339()}})
            code = await kubelet.run_init(runtime, container)
            if code == 0:
                break
            terminated = {"terminated": {"exitCode": code, "reason": "Error"}}
            if policy == "Never":
                show(name, terminated)
                kubelet.fail_pod_status(runtime, code, "Init:Error")
                return False
            failures += 1
            runtime.init_restarts[name] = runtime.init_restarts.get(name, 0) + 1
            if failures > 1:  # the first retry is immediate, as a kubelet's back-off
                delay = backoff_delay(config.backoff_initial, config.backoff_max, failures - 1)
                message = (
                    f"back-off {delay:g}s restarting failed container={name} pod={runtime.ctx.name}"
                )
                show(name, terminated, ("CrashLoopBackOff", message))
                await asyncio.sleep(delay)
    show(None, {})
    return True
