"""Commands quoted in docs/setup-guide.md, parsed so tests can hold them to the code:
the `aws dynamodb create-table` call as boto3 arguments, and every `otm ...` line."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from tests.deploy.render import REPO_ROOT

GUIDE = REPO_ROOT / "docs" / "setup-guide.md"
_FENCE = re.compile(r"^```[a-z]*\n(.*?)^```", re.M | re.S)
_INLINE = re.compile(r"`([^`\n]+)`")


def code_blocks(text: str) -> list[str]:
    return [m.group(1) for m in _FENCE.finditer(text)]


def shell_lines(block: str) -> list[str]:
    """Lines of a shell block with backslash continuations joined (not parsed: heredocs
    and multi-line quotes elsewhere in the guide are not single commands)."""
    return re.sub(r"\\\n\s*", " ", block).splitlines()


def commands_starting(text: str, prefix: str) -> list[list[str]]:
    """Words of every code-block command line starting with `prefix` (comments dropped)."""
    return [
        shlex.split(line, comments=True)
        for block in code_blocks(text)
        for line in shell_lines(block)
        if line.startswith(prefix)
    ]


def otm_invocations(text: str) -> list[list[str]]:
    """Arguments of every `otm ...` command in code blocks and inline code spans."""
    found = [words[1:] for words in commands_starting(text, "otm ")]
    prose = _FENCE.sub("", text)
    for span in _INLINE.findall(prose):
        if span.startswith("otm "):
            found.append(shlex.split(span)[1:])
    return found


def _shorthand(item: str) -> dict[str, str]:
    """AWS CLI shorthand `Key=Value,Key2=Value2`."""
    return dict(pair.split("=", 1) for pair in item.split(","))


def create_table_arguments(text: str) -> dict[str, Any]:
    """The guide's `aws dynamodb create-table` as boto3 `create_table` keyword arguments.
    Options this parser does not know are an error, not silently dropped."""
    commands = commands_starting(text, "aws dynamodb create-table ")
    assert len(commands) == 1, f"expected one create-table command, found {len(commands)}"
    words = commands[0][3:]
    kwargs: dict[str, Any] = {}
    index = 0
    while index < len(words):
        option = words[index]
        values = []
        index += 1
        while index < len(words) and not words[index].startswith("--"):
            values.append(words[index])
            index += 1
        if option == "--table-name":
            kwargs["TableName"] = values[0]
        elif option == "--attribute-definitions":
            kwargs["AttributeDefinitions"] = [_shorthand(v) for v in values]
        elif option == "--key-schema":
            kwargs["KeySchema"] = [_shorthand(v) for v in values]
        elif option == "--billing-mode":
            kwargs["BillingMode"] = values[0]
        elif option == "--global-secondary-indexes":
            kwargs["GlobalSecondaryIndexes"] = json.loads(values[0])
        elif option == "--deletion-protection-enabled":
            kwargs["DeletionProtectionEnabled"] = True
        else:
            raise AssertionError(f"create-table option {option} is not modelled")
    return kwargs
