"""docs/setup-guide.md against the code it drives: the DynamoDB table it creates is the
one the registry adapter expects (checked on a moto server), and every `otm` command it
quotes parses with the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from daemon.kube import names
from daemon.model import Tenant, TenantStatus
from tests.deploy import inventory as inv
from tests.deploy.guide import GUIDE, create_table_arguments, otm_invocations
from tests.deploy.iam_docs import ACCOUNT_ID, BUCKET, REGION, TABLE_ARN, load
from tests.deploy.iam_eval import is_allowed
from tests.deploy.karpenter import tolerates

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


AwsCall = tuple[str, str, dict[str, Any]]  # (service, operation, parameters)


@pytest.fixture
def aws_calls() -> Iterator[list[AwsCall]]:
    """Every DynamoDB and S3 call the adapters' shared boto3 session makes."""
    aws = pytest.importorskip("daemon.adapters.aws")
    calls: list[AwsCall] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        calls.append((model.service_model.service_name, model.name, dict(params)))

    events = aws._shared_session().events
    for service in ("dynamodb", "s3"):
        events.register(
            f"before-parameter-build.{service}", record, unique_id=f"deploy-guide-{service}"
        )
    try:
        yield calls
    finally:
        for service in ("dynamodb", "s3"):
            events.unregister(
                f"before-parameter-build.{service}", unique_id=f"deploy-guide-{service}"
            )


def _create_guide_table(guide_text: str, moto_url: str) -> dict[str, Any]:
    import boto3

    table = create_table_arguments(guide_text)
    client = boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION)
    try:
        client.create_table(**table)
    finally:
        client.close()
    return table


async def test_adapter_uses_the_guide_table_as_is(
    guide_text: str, moto_url: str, aws_calls: list[AwsCall]
) -> None:
    """The daemon's role cannot create or alter tables, so the adapter must find the
    guide's table complete: no CreateTable, no UpdateTable, and status queries work."""
    registry_dynamodb = pytest.importorskip("daemon.adapters.registry_dynamodb")
    table = _create_guide_table(guide_text, moto_url)
    assert table["GlobalSecondaryIndexes"] == [registry_dynamodb._status_index()]

    registry = await registry_dynamodb.DynamoRegistry.open(
        table=table["TableName"], region=REGION, endpoint_url=moto_url
    )
    try:
        await registry.create(Tenant(tenant_id="alice"))
        await registry.create(Tenant(tenant_id="bob"))
        idle = await registry.list(status=TenantStatus.IDLE)
        assert sorted(t.tenant_id for t in idle) == ["alice", "bob"]
    finally:
        await registry.close()
    operations = {op for service, op, _ in aws_calls if service == "dynamodb"}
    assert {"DescribeTable", "Query"} <= operations
    assert not {"CreateTable", "UpdateTable", "DeleteTable"} & operations


def _iam_request(call: AwsCall) -> list[tuple[str, str, dict[str, str]]]:
    """(action, resource ARN, request context) IAM authorizes for one API call."""
    service, operation, params = call
    if service == "dynamodb":
        resource = f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{params['TableName']}"
        if "IndexName" in params:
            resource += f"/index/{params['IndexName']}"
        return [(f"dynamodb:{operation}", resource, {})]
    bucket = f"arn:aws:s3:::{params['Bucket']}"
    if operation in ("ListObjectsV2", "ListObjects"):
        prefix = params.get("Prefix")
        return [("s3:ListBucket", bucket, {"s3:prefix": prefix} if prefix is not None else {})]
    if operation == "HeadBucket":
        return [("s3:ListBucket", bucket, {})]
    if operation == "DeleteObjects":
        keys = [o["Key"] for o in params["Delete"]["Objects"]]
        return [("s3:DeleteObject", f"{bucket}/{key}", {}) for key in keys]
    if operation in ("GetObject", "PutObject", "DeleteObject"):
        return [(f"s3:{operation}", f"{bucket}/{params['Key']}", {})]
    return [(f"s3:{operation}", bucket, {})]


async def test_daemon_policy_allows_every_call_the_adapters_make(
    guide_text: str, moto_url: str, aws_calls: list[AwsCall]
) -> None:
    """Run the production adapters through their operations on the guide's table and
    bucket, and evaluate every recorded AWS call against deploy/iam/daemon-policy.json."""
    registry_dynamodb = pytest.importorskip("daemon.adapters.registry_dynamodb")
    state_s3 = pytest.importorskip("daemon.adapters.state_s3")
    import boto3

    table = _create_guide_table(guide_text, moto_url)
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name=REGION)
    try:
        s3.create_bucket(Bucket=BUCKET)
    finally:
        s3.close()
    aws_calls.clear()

    registry = await registry_dynamodb.DynamoRegistry.open(
        table=table["TableName"], region=REGION, endpoint_url=moto_url
    )
    store = await state_s3.S3StateStore.open(bucket=BUCKET, region=REGION, endpoint_url=moto_url)
    try:
        tenant = await registry.create(Tenant(tenant_id="alice"))
        await registry.get("alice")
        await registry.update("alice", if_version=tenant.version, idle_timeout_s=60)
        await registry.touch("alice", tenant.last_active_at)
        await registry.list(status=TenantStatus.IDLE)
        await registry.list()
        await store.put("alice", "state/openclaw.sqlite", b"db")
        await store.put("alice", "workspace/AGENTS.md", b"notes")
        assert await store.get("alice", "state/openclaw.sqlite") == b"db"
        assert await store.list("alice", "state/") == ["state/openclaw.sqlite"]
        await store.delete("alice", "workspace/AGENTS.md")
        assert await store.ping()
        await store.delete_tenant("alice")
        await registry.delete("alice")
    finally:
        await store.close()
        await registry.close()

    policy = load("daemon-policy.json")
    assert len(aws_calls) >= 14
    for call in aws_calls:
        for action, resource, context in _iam_request(call):
            assert is_allowed(policy, action, resource, context), (call[1], resource, context)


def _parse_otm(argv: list[str]) -> None:
    """Parse (never run) `otm ARGV` with the real Typer app: unknown commands, flags or
    bad values raise Typer's usage errors (typer.TyperException)."""
    cli = pytest.importorskip("otm.cli")
    import typer
    from typer.core import TyperGroup

    command: Any = typer.main.get_command(cli.app)
    context = command.context_class(command, info_name="otm")
    words = list(argv)
    while isinstance(command, TyperGroup):
        assert words, f"otm {' '.join(argv)}: no subcommand"
        name, words = words[0], words[1:]
        sub = command.get_command(context, name)
        assert sub is not None, f"otm {' '.join(argv)}: no command {name!r}"
        if isinstance(sub, TyperGroup):
            context = sub.context_class(sub, info_name=name, parent=context)
        else:
            try:
                sub.make_context(name, words, parent=context)
            except typer.Exit as done:  # --help
                assert done.exit_code == 0
        command = sub


def test_guide_otm_commands_parse_with_the_cli(guide_text: str) -> None:
    invocations = otm_invocations(guide_text)
    assert ["tenant", "create", "alice", "--bot-token-file", "alice.token"] in invocations
    assert len(invocations) >= 6
    for argv in invocations:
        _parse_otm(argv)


def test_cli_parse_check_rejects_what_the_cli_rejects() -> None:
    import typer

    for argv in (
        ["tenant", "create", "alice", "--bot-token-flie", "alice.token"],
        ["tenant", "get", "alice", "-o", "yml"],
        ["tenant", "create"],
    ):
        with pytest.raises(typer.TyperException):
            _parse_otm(argv)
    with pytest.raises(AssertionError, match="no command 'tenants'"):
        _parse_otm(["tenants", "list"])


def test_the_guide_turns_on_strict_network_policy_enforcement(guide_text: str) -> None:
    """The isolation NetworkPolicies promise needs the VPC CNI's agent, in strict mode (a
    new pod denied until its policies are in force, not open)."""
    start = guide_text.index("cat > /tmp/otm-cluster.yaml <<EOF\n")
    config_text = guide_text[start:].split("\n", 1)[1].split("\nEOF\n", 1)[0]
    config = yaml.safe_load(config_text)
    (vpc_cni,) = [a for a in config["addons"] if a["name"] == "vpc-cni"]
    values = json.loads(vpc_cni["configurationValues"])
    assert values["enableNetworkPolicy"] == "true"
    assert values["env"]["NETWORK_POLICY_ENFORCING_MODE"] == "strict"


def test_kata_deploy_removes_the_startup_taint_and_tolerates_both(
    guide_text: str, rendered: dict[str, list[Doc]]
) -> None:
    """The metal NodePool's startup taint keeps tenant pods off a node until the runtime is
    installed; only kata-deploy removes it, so the guide's install must name it (as `key` or
    `key:effect`) and let kata-deploy's own pods tolerate it."""
    (pool,) = [d for d in rendered["eks"] if d.get("kind") == "NodePool"]
    startup = pool["spec"]["template"]["spec"]["startupTaints"]
    assert startup
    removed = json.loads(guide_text.split("--set-json 'startupTaints=", 1)[1].split("'", 1)[0])
    patch = guide_text.split("kubectl -n kube-system patch ds kata-deploy --type json -p \\\n")
    ops = json.loads(patch[1].strip().split("\n", 1)[0].strip("'"))
    tolerations = ops[0]["value"]
    for taint in startup:
        assert {taint["key"], f"{taint['key']}:{taint['effect']}"} & set(removed), taint
        assert tolerates(tolerations, taint), taint
    for taint in pool["spec"]["template"]["spec"]["taints"]:
        assert tolerates(tolerations, taint), taint
