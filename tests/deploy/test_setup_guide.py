"""docs/setup-guide.md against the code it drives: the DynamoDB table it creates is the
one the registry adapter expects (checked on a moto server), and every `otm` command it
quotes parses with the real CLI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from daemon import k8s_names as names
from daemon.model import Tenant, TenantStatus
from tests.deploy import inventory as inv
from tests.deploy.guide import GUIDE, create_table_arguments, otm_invocations
from tests.deploy.iam_docs import TABLE_ARN, load
from tests.deploy.iam_eval import is_allowed

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def guide_text() -> str:
    return GUIDE.read_text()


def test_guide_table_matches_the_policy_and_the_config(
    guide_text: str, rendered: dict[str, list[Doc]]
) -> None:
    table = create_table_arguments(guide_text)
    config = inv.find(rendered["eks"], "ConfigMap", names.DAEMON_CONFIGMAP, names.DAEMON_NAMESPACE)
    assert config is not None
    assert table["TableName"] == config["data"]["OTM_DYNAMODB_TABLE"]
    assert table["KeySchema"] == [{"AttributeName": "tenant_id", "KeyType": "HASH"}]
    policy = load("daemon-policy.json")
    for index in table["GlobalSecondaryIndexes"]:
        assert is_allowed(policy, "dynamodb:Query", f"{TABLE_ARN}/index/{index['IndexName']}", {})
    defined = {a["AttributeName"] for a in table["AttributeDefinitions"]}
    used = {
        k["AttributeName"]
        for schema in [
            table["KeySchema"],
            *(i["KeySchema"] for i in table["GlobalSecondaryIndexes"]),
        ]
        for k in schema
    }
    assert defined == used  # DynamoDB rejects definitions no key uses


@pytest.fixture
def dynamodb_calls() -> Iterator[list[str]]:
    """Names of the DynamoDB API calls the adapter's boto3 session makes."""
    aws = pytest.importorskip("daemon.adapters.aws")
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events = aws._shared_session().events
    events.register("before-call.dynamodb", record, unique_id="deploy-guide-calls")
    try:
        yield calls
    finally:
        events.unregister("before-call.dynamodb", unique_id="deploy-guide-calls")


async def test_adapter_uses_the_guide_table_as_is(
    guide_text: str, moto_url: str, dynamodb_calls: list[str]
) -> None:
    """The daemon's role cannot create or alter tables, so the adapter must find the
    guide's table complete: no CreateTable, no UpdateTable, and status queries work."""
    registry_dynamodb = pytest.importorskip("daemon.adapters.registry_dynamodb")
    import boto3

    table = create_table_arguments(guide_text)
    client = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1")
    try:
        client.create_table(**table)
    finally:
        client.close()
    assert table["GlobalSecondaryIndexes"] == [registry_dynamodb._status_index()]

    registry = await registry_dynamodb.DynamoRegistry.open(
        table=table["TableName"], region="us-east-1", endpoint_url=moto_url
    )
    try:
        assert "DescribeTable" in dynamodb_calls
        assert not {"CreateTable", "UpdateTable", "DeleteTable"} & set(dynamodb_calls)
        await registry.create(Tenant(tenant_id="alice"))
        await registry.create(Tenant(tenant_id="bob"))
        idle = await registry.list(status=TenantStatus.IDLE)
        assert [t.tenant_id for t in idle] == ["alice", "bob"]
        assert "Query" in dynamodb_calls
    finally:
        await registry.close()


def _parse_otm(argv: list[str]) -> None:
    """Parse (never run) `otm ARGV` with the real Typer app: unknown commands, flags or
    bad values raise click's usage errors."""
    cli = pytest.importorskip("otm.cli")
    import click
    import typer

    command: click.Command = typer.main.get_command(cli.app)
    parent = click.Context(command, info_name="otm")
    words = list(argv)
    while isinstance(command, click.Group):
        assert words, f"otm {' '.join(argv)}: no subcommand"
        sub = command.get_command(parent, words[0])
        assert sub is not None, f"otm {' '.join(argv)}: no command {words[0]!r}"
        parent = click.Context(sub, info_name=words[0], parent=parent)
        command, words = sub, words[1:]
    try:
        with command.make_context(parent.info_name, words, parent=parent.parent):
            pass
    except click.exceptions.Exit as done:  # --help
        assert done.exit_code == 0


def test_guide_otm_commands_parse_with_the_cli(guide_text: str) -> None:
    invocations = otm_invocations(guide_text)
    assert ["tenant", "create", "alice", "--bot-token-file", "alice.token"] in invocations
    assert len(invocations) >= 6
    for argv in invocations:
        _parse_otm(argv)
