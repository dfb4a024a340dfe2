"""The `:` command line (k9s style): parsing, and completion of command and tenant names."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from textual.suggester import Suggester


@dataclass(frozen=True)
class CommandSpec:
    name: str
    aliases: tuple[str, ...]
    takes_tenant: bool
    mutating: bool
    help: str


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("tenants", ("t", "tenant"), False, False, "Back to the tenant table"),
    CommandSpec("config", ("cfg",), False, False, "Edit the live config"),
    CommandSpec("health", ("status",), False, False, "Daemon, backends and warm pool"),
    CommandSpec("audit", (), False, False, "Who changed what (the audit log)"),
    CommandSpec("help", ("h", "?"), False, False, "Keys and commands"),
    CommandSpec("quit", ("q", "q!", "exit"), False, False, "Leave the dashboard"),
    CommandSpec("describe", ("desc",), True, False, "Describe NAME"),
    CommandSpec("logs", ("log",), True, False, "Follow the logs of NAME"),
    CommandSpec("wake", (), True, True, "Wake NAME"),
    CommandSpec("sleep", (), True, True, "Put NAME to sleep"),
    CommandSpec("delete", ("del",), True, True, "Delete NAME (asks first)"),
)
_BY_NAME = {alias: spec for spec in COMMANDS for alias in (spec.name, *spec.aliases)}


class CommandError(ValueError):
    pass


@dataclass(frozen=True)
class Command:
    spec: CommandSpec
    tenant_id: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name


def parse_command(text: str) -> Command:
    words = text.strip().removeprefix(":").split()
    if not words:
        raise CommandError("empty command")
    spec = _BY_NAME.get(words[0].lower())
    if spec is None:
        known = ", ".join(s.name for s in COMMANDS)
        raise CommandError(f"unknown command {words[0]!r} (known: {known})")
    if spec.takes_tenant:
        if len(words) != 2:
            raise CommandError(f"usage: {spec.name} NAME")
        return Command(spec, words[1])
    if len(words) != 1:
        raise CommandError(f"{spec.name} takes no arguments")
    return Command(spec)


class CommandSuggester(Suggester):
    """Completes a command name, then a tenant name after a command that takes one."""

    def __init__(self, tenant_ids: Callable[[], Iterable[str]]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self._tenant_ids = tenant_ids

    async def get_suggestion(self, value: str) -> str | None:
        head, space, rest = value.partition(" ")
        if not space:
            for spec in COMMANDS:
                if value and spec.name.startswith(value):
                    return spec.name
            return None
        named = _BY_NAME.get(head)
        if named is None or not named.takes_tenant or " " in rest:
            return None
        for tenant_id in sorted(self._tenant_ids()):
            if tenant_id.startswith(rest):
                return f"{head} {tenant_id}"
        return None
