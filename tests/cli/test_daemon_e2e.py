"""End to end: `otm daemon` on the embedded default (its own private redis-server),
tenants created through `python -m otm`, surviving a SIGTERM and restart."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cli.conftest import Cli, failed, ok
from tests.support.daemon_proc import DaemonProc, running_daemon
from tests.support.servers import project_env, python_cmd

BOT_TOKEN = "123456:E2E-SECRET"


def otm(data_dir: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python_cmd("-m", "otm", *args),
        env=project_env(OTM_DATA_DIR=str(data_dir)),
        input=input,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _bad_inputs_change_nothing(daemon: DaemonProc, data_dir: Path, tmp_path: Path) -> None:
    cli = Cli(data_dir)
    failed(cli("tenant create Not_A_Dns_Label"), 2, "invalid tenant id")
    failed(cli("tenant create acme --bot-token-stdin", input=BOT_TOKEN), 1, "already exists")
    failed(cli("tenant get ghost"), 1, "tenant 'ghost' not found")
    failed(cli("tenant delete ghost"), 1, "tenant 'ghost' not found")
    failed(
        cli("tenant update acme --label tier=silver --token wrong"),
        1,
        "unauthorized",
        token_flag=True,
    )
    # Server given but no token anywhere: the daemon refuses, the hint names the options.
    no_token = {"OTM_SERVER": daemon.admin_url, "OTM_DATA_DIR": str(tmp_path / "elsewhere")}
    failed(cli("tenant suspend acme", **no_token), 1, "unauthorized", "OTM_ADMIN_TOKEN")
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        daemon.admin_url + "/v1/tenants/acme",
        method="PATCH",
        data=b'{"labels": {"tier": "silver"}',
        headers={"Authorization": f"Bearer {daemon.token}"},
    )
    try:
        urllib.request.urlopen(request, timeout=10).close()
        raise AssertionError("malformed JSON was accepted")
    except urllib.error.HTTPError as exc:
        with exc:
            assert exc.code == 400
            assert json.loads(exc.read()) == {"error": "malformed JSON body"}
    listed = json.loads(ok(cli("tenant list -o json")))
    assert [(t["tenant_id"], t["status"], t["labels"]) for t in listed["items"]] == [
        ("acme", "idle", {"tier": "gold"})
    ]


def test_tenant_survives_daemon_restart_on_the_embedded_default(tmp_path: Path) -> None:
    data_dir = tmp_path / "otm"
    # No OTM_REDIS_URL anywhere: the daemon starts its own redis-server under the data dir.
    first = ("-m", "otm", "--data-dir", str(data_dir), "daemon", "--admin-port", "0")
    first += ("--router-port", "0", "--model-gateway-port", "0", "--log-level", "WARNING")
    with running_daemon(data_dir, args=first, env=project_env()) as daemon:
        assert (data_dir / "redis").is_dir()
        assert json.loads((data_dir / "daemon.json").read_text())["admin_url"] == daemon.admin_url

        created = otm(
            data_dir,
            "tenant",
            "create",
            "acme",
            "--bot-token-stdin",
            "--label",
            "tier=gold",
            input=BOT_TOKEN + "\n",
        )
        assert (created.returncode, created.stdout, created.stderr) == (
            0,
            "tenant/acme created\n",
            "",
        )
        _bad_inputs_change_nothing(daemon, data_dir, tmp_path)
        assert daemon.stop() == 0  # SIGTERM: clean exit
    assert not (data_dir / "daemon.json").exists()

    down = otm(data_dir, "tenant", "list")
    assert down.returncode == 1
    assert "otm daemon" in down.stderr
    assert down.stdout == ""

    # Second start: no flags at all, settings from the YAML file and the environment.
    config = tmp_path / "otm.yaml"
    config.write_text("admin_port: 0\nrouter_port: 0\nmodel_gateway_port: 0\nlog_level: WARNING\n")
    second = ("-m", "otm", "daemon", "--config", str(config))
    with running_daemon(
        data_dir, args=second, env=project_env(OTM_DATA_DIR=str(data_dir))
    ) as daemon:
        got = otm(data_dir, "tenant", "get", "acme", "-o", "json")
        assert got.returncode == 0, got.stderr
        assert got.stderr == ""
        tenant = json.loads(got.stdout)
        assert (tenant["tenant_id"], tenant["status"], tenant["labels"]) == (
            "acme",
            "idle",
            {"tier": "gold"},
        )
        assert tenant["has_bot_token"] is True
        assert BOT_TOKEN not in got.stdout
        names = otm(data_dir, "tenant", "list", "-o", "name")
        assert (names.returncode, names.stdout) == (0, "tenant/acme\n")
        assert daemon.stop() == 0


def test_daemon_settings_errors_are_usage_errors(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    clean = {"OTM_CONFIG": None, "OTM_REDIS_URL": None}
    failed(cli("daemon --runtime bogus", **clean), 2, "runtime: expected one of")
    failed(cli(f"daemon --config {tmp_path / 'missing.yaml'}", **clean), 2, "cannot read config")
    failed(cli("daemon --admin-port 70000", **clean), 2, "not a TCP port")
    (tmp_path / "typo.yaml").write_text("admin_prot: 1\n")
    failed(cli(f"daemon --config {tmp_path / 'typo.yaml'}", **clean), 2, "unknown settings")
    failed(cli("daemon", OTM_RUNTIME="bogus", OTM_CONFIG=None), 2, "runtime")
    assert not (tmp_path / "daemon.json").exists()
