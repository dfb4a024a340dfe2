"""`otm rollout` and /v1/rollout against a real daemon: start with a selector, the first
wave moves only idle selected tenants, pause/resume/rollback, and the bad-input answers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from tests.cli.conftest import Cli, api, failed, ok
from tests.support.daemon_proc import DaemonProc

NEW = "registry.example/openclaw:v2"


def _images(daemon: DaemonProc) -> dict[str, str | None]:
    status, listed = api(daemon, "GET", "/v1/tenants")
    assert status == 200
    return {t["tenant_id"]: t["image"] for t in listed["items"]}


def _until(check: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_rollout_start_status_pause_resume_rollback(cli: Cli, clean_daemon: DaemonProc) -> None:
    assert ok(cli("rollout status")) == "no rollout\n"
    assert json.loads(ok(cli("rollout status -o json"))) == {"rollout": None}
    failed(cli("rollout pause"), 1, "no rollout")
    for n, (tenant, tier) in enumerate(
        (("beta-1", "beta"), ("beta-2", "beta"), ("prod-1", "prod"))
    ):
        body = {"tenant_id": tenant, "bot_token": f"12345{n}:ROLL", "labels": {"tier": tier}}
        status, body = api(clean_daemon, "POST", "/v1/tenants", body)
        assert status == 201, body

    table = ok(cli(f"rollout start {NEW} --steps 50%,100% --pause 10m -l tier=beta"))
    assert f"image    {NEW}" in table and "status   running" in table
    assert "wave     1/2 (50%; steps 50%, 100%)" in table and "pause    10m" in table
    # The first wave (half of the two selected tenants) moves at once: they are idle.
    _until(lambda: sum(i == NEW for i in _images(clean_daemon).values()) == 1, "wave 1")
    images = _images(clean_daemon)
    assert images["prod-1"] is None  # not selected
    doc = json.loads(ok(cli("rollout status -o json")))["rollout"]
    assert (doc["moved"], doc["selector"], doc["pause_s"]) == (1, "tier=beta", 600.0)
    # No wake on the new image yet, and a 10m pause: the second wave waits.
    assert doc["wave_number"] == 1
    failed(cli("rollout start registry.example/openclaw:v3"), 1, "is running")
    # `otm status` and the dashboard's health line (GET /v1/status) show it too.
    brief = api(clean_daemon, "GET", "/v1/status")[1]["rollout"]
    assert (brief["image"], brief["status"], brief["wave"], brief["waves"]) == (
        NEW,
        "running",
        1,
        2,
    )
    [row] = [line for line in ok(cli("status")).splitlines() if line.startswith("rollout")]
    assert row.split() == ["rollout", "running", f"{NEW},", "wave", "1/2"]

    assert "status   paused" in ok(cli("rollout pause"))
    failed(cli("rollout pause"), 1, "cannot go paused")
    assert "status   running" in ok(cli("rollout resume"))
    out = ok(cli("rollout rollback --reason 'smoke test failed'"))
    assert "reason   smoke test failed" in out
    _until(
        lambda: api(clean_daemon, "GET", "/v1/rollout")[1]["rollout"]["status"] == "rolled_back",
        "the rollback",
    )
    assert set(_images(clean_daemon).values()) == {None}
    # A finished rollout lets the next one start.
    ok(cli(f"rollout start {NEW} -o json"))
    ok(cli("rollout rollback"))


def test_rollout_bad_input(cli: Cli, clean_daemon: DaemonProc) -> None:
    failed(cli(f"rollout start {NEW} --steps 25%,5%"), 2, "steps")
    failed(cli(f"rollout start {NEW} --steps 50%"), 2, "last step must be 100%")
    failed(cli(f"rollout start {NEW} --pause 10x"), 2, "--pause")
    failed(cli("rollout start 'not an image'"), 2, "invalid image")
    failed(cli(f"rollout start {NEW} -l 'tier in (a'"), 2, "selector")
    assert cli("rollout start").exit_code == 2  # missing IMAGE: usage error
    assert api(clean_daemon, "POST", "/v1/rollout", raw=b"{")[0] == 400
    assert api(clean_daemon, "POST", "/v1/rollout", {"image": NEW, "bogus": 1})[0] == 400
    assert (
        api(clean_daemon, "POST", "/v1/rollout", {"image": NEW, "gate": {"min_wakes": -1}})[0]
        == 400
    )
    assert api(clean_daemon, "GET", "/v1/rollout")[1] == {"rollout": None}
    req = urllib.request.Request(clean_daemon.admin_url + "/v1/rollout", method="GET")
    try:
        urllib.request.urlopen(req, timeout=10).close()
        raise AssertionError("the rollout API answered without a token")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
        exc.close()
