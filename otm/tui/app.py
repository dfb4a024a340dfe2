"""`otm tui`: a k9s-style dashboard over a TenantSource.

Threading rule: workers fetch and post past-tense messages (otm/tui/messages.py); the
handlers here own the state (tenants, buffered counts, status, connection). Watch events
only mark the table dirty; a timer renders at most ``render_interval_s``, so a burst of
a thousand upserts costs a handful of renders.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from textual.actions import parse as parse_action
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import WorkerState

from otm.tui.audit_screen import AuditScreen
from otm.tui.commands import CommandError, parse_command
from otm.tui.config_screen import ConfigScreen
from otm.tui.detail_screens import DescribeScreen, LogsScreen
from otm.tui.dialogs import CommandPrompt, ConfirmScreen, HealthScreen, HelpRow, HelpScreen
from otm.tui.health import Connection
from otm.tui.keymap import keymap
from otm.tui.main_screen import MUTATING_ACTIONS, TenantsScreen, tenant_command
from otm.tui.messages import (
    ActionFinished,
    BufferCountsFetched,
    ConfigEditorRequested,
    ConfigSaved,
    ReconnectRequested,
    StatusFetched,
    TenantActionRequested,
    TenantFormRequested,
    TenantFormSubmitted,
    WatchConnected,
    WatchDisconnected,
    WatchEventReceived,
)
from otm.tui.snapshots_screen import SnapshotsScreen
from otm.tui.source import Delete, Record, Snapshot, SourceError, TenantSource, Upsert
from otm.tui.tenant_form import TenantFormScreen

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Timings:
    """Intervals of the dashboard's timers (tests shorten or lengthen them)."""

    render_interval_s: float = 0.25
    """Coalescing window of the tenant table: watch floods render at most 4 times a second."""
    clock_refresh_s: float = 5.0
    """Relative times (AGE, LAST ACTIVE, IDLE DEADLINE) are re-rendered this often."""
    status_interval_s: float = 5.0
    buffer_interval_s: float = 5.0
    max_buffer_polls: int = 100
    """Buffered counts are fetched for at most this many tenants on screen per round."""
    buffer_concurrency: int = 4
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 15.0


class OtmApp(App[None]):
    TITLE = "otm"
    ENABLE_COMMAND_PALETTE = False  # `:` is the command line, as in k9s
    BINDINGS: ClassVar[list[BindingType]] = keymap("app")

    def __init__(
        self,
        source: TenantSource,
        *,
        readonly: bool,
        clock: Clock = utc_now,
        timings: Timings = Timings(),
        keymap: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.source = source
        self.readonly = readonly
        self.clock = clock
        self.timings = timings
        self.keymap = dict(keymap or {})
        self.tenants: dict[str, Record] = {}
        self.buffered: dict[str, int | None] = {}
        self.usage: dict[str, Record] = {}
        """Model usage of the last 24 h per tenant, polled with the buffers."""
        self.status: Record | None = None
        self.status_error: str | None = None
        self.connection = Connection()
        self.synced = False
        """True once the first snapshot arrived."""
        self.dirty = False
        self.render_count = 0
        """Table renders so far (the coalescing tests read it)."""
        if self.keymap:
            self.set_keymap(self.keymap)

    def get_default_screen(self) -> Screen[Any]:
        return TenantsScreen(self)

    @property
    def tenants_screen(self) -> TenantsScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, TenantsScreen)
        return screen

    def on_mount(self) -> None:
        self.set_interval(self.timings.render_interval_s, self.flush, name="render")
        self.set_interval(self.timings.clock_refresh_s, self.mark_dirty, name="clock")
        self.set_interval(self.timings.status_interval_s, self.poll_status, name="status")
        self.set_interval(self.timings.buffer_interval_s, self.poll_buffers, name="buffers")
        self.start_watch()
        self.poll_status()

    # -- rendering -------------------------------------------------------------------
    def mark_dirty(self) -> None:
        self.dirty = True

    def flush(self) -> None:
        """Render pending changes now (the render timer calls this)."""
        if not self.dirty:
            return
        self.dirty = False
        self.render_count += 1
        self.tenants_screen.refresh_view()

    def default_idle_timeout_s(self) -> int | None:
        config = (self.status or {}).get("config") or {}
        value = config.get("default_idle_timeout_s")
        return int(value) if value is not None else None

    # -- watch -----------------------------------------------------------------------
    def start_watch(self) -> None:
        self.run_worker(
            self._watch(), name="watch", group="watch", exclusive=True, exit_on_error=False
        )

    def reconnect(self) -> None:
        """ctrl+r: drop the watch and start over now (skips any backoff wait)."""
        self.start_watch()
        self.poll_status()
        self.notify("reconnecting…", timeout=2)

    async def _watch(self) -> None:
        delay = self.timings.reconnect_initial_s
        attempt = 0
        while True:
            live = False
            try:
                async for event in self.source.watch():
                    if not live:
                        live, attempt, delay = True, 0, self.timings.reconnect_initial_s
                        self.post_message(WatchConnected())
                    self.post_message(WatchEventReceived(event))
                reason = "the watch stream ended"
            except SourceError as exc:
                reason = str(exc)
            except Exception as exc:  # keep the dashboard alive; say what broke
                log.exception("watch failed")
                reason = f"{type(exc).__name__}: {exc}"
            attempt += 1
            self.post_message(WatchDisconnected(reason, attempt, delay))
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.timings.reconnect_max_s)

    def on_watch_connected(self, message: WatchConnected) -> None:
        self.connection = Connection("live")
        self.mark_dirty()

    def on_watch_disconnected(self, message: WatchDisconnected) -> None:
        self.connection = Connection(
            "disconnected", message.reason, message.attempt, message.retry_in_s
        )
        self.mark_dirty()

    def on_watch_event_received(self, message: WatchEventReceived) -> None:
        event = message.event
        if isinstance(event, Snapshot):
            self.tenants = {str(t["tenant_id"]): t for t in event.items}
            self.buffered = {k: v for k, v in self.buffered.items() if k in self.tenants}
            first = not self.synced
            self.synced = True
            if first:
                self.poll_buffers()
        elif isinstance(event, Upsert):
            self._apply_record(event.tenant)
        elif isinstance(event, Delete):
            self.tenants.pop(event.tenant_id, None)
            self.buffered.pop(event.tenant_id, None)
        self.mark_dirty()

    def _apply_record(self, record: Record) -> None:
        """Keep the newer of two views of a tenant (an action's answer can arrive after
        the watch already reported a later change)."""
        tenant_id = str(record["tenant_id"])
        current = self.tenants.get(tenant_id)
        if current is not None and int(current.get("version", 0)) > int(record.get("version", 0)):
            return
        self.tenants[tenant_id] = record
        screen = self.screen
        if isinstance(screen, DescribeScreen) and screen.tenant_id == tenant_id:
            screen.action_reload()

    # -- polling: status and buffered counts -------------------------------------------
    def _busy(self, group: str) -> bool:
        """A poll still in flight (slow link): skip this round rather than pile up."""
        return any(
            w.group == group and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
            for w in self.workers
        )

    def _spawn(self, coro: Coroutine[Any, Any, None], group: str) -> None:
        self.run_worker(coro, group=group, exit_on_error=False)

    def poll_status(self) -> None:
        if not self._busy("status"):
            self._spawn(self._fetch_status(), "status")

    async def _fetch_status(self) -> None:
        try:
            status = await self.source.get_status()
        except SourceError as exc:
            self.post_message(StatusFetched(None, str(exc)))
        else:
            self.post_message(StatusFetched(status, None))

    def on_status_fetched(self, message: StatusFetched) -> None:
        if message.status is not None:
            self.status = message.status
        self.status_error = message.error
        self.mark_dirty()
        if isinstance(self.screen, HealthScreen):
            self.screen.show(self.status, self.status_error)

    def poll_buffers(self) -> None:
        if not self.synced or self._busy("buffers"):
            return
        ids = self.tenants_screen.visible_ids()[: self.timings.max_buffer_polls]
        if ids:
            self._spawn(self._fetch_buffers(ids), "buffers")

    async def _fetch_buffers(self, ids: list[str]) -> None:
        gate = asyncio.Semaphore(self.timings.buffer_concurrency)

        async def one(tenant_id: str) -> int | None:
            async with gate:
                try:
                    return await self.source.buffered(tenant_id)
                except SourceError:
                    return None

        counts = await asyncio.gather(*(one(t) for t in ids))
        try:
            usage = await self.source.usage()
        except SourceError:
            usage = None
        self.post_message(BufferCountsFetched(dict(zip(ids, counts, strict=True)), usage))

    def on_buffer_counts_fetched(self, message: BufferCountsFetched) -> None:
        for tenant_id, count in message.counts.items():
            if tenant_id in self.tenants:
                self.buffered[tenant_id] = count
        if message.usage is not None:
            self.usage = message.usage
        self.mark_dirty()

    # -- actions ---------------------------------------------------------------------
    def _refuse_readonly(self, what: str) -> bool:
        if self.readonly:
            self.notify(f"read-only mode: {what} is disabled", severity="warning")
        return self.readonly

    def request_wake(self, tenant_id: str) -> None:
        if not self._refuse_readonly("wake"):
            self._spawn(self._act("wake", tenant_id), "actions")

    def request_sleep(self, tenant_id: str) -> None:
        if not self._refuse_readonly("sleep"):
            self.notify(f"putting {tenant_id} to sleep (after a final state sync)…", timeout=3)
            self._spawn(self._act("sleep", tenant_id), "actions")

    def request_delete(self, tenant_id: str) -> None:
        if self._refuse_readonly("delete"):
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._spawn(self._act("delete", tenant_id), "actions")

        question = (
            f"Delete tenant {tenant_id}?\n\nIts agent is stopped and its record removed; "
            "buffered messages are dropped."
        )
        self.push_screen(ConfirmScreen(question, yes_label="Yes, delete"), answered)

    def request_hold(self, verb: str, tenant_id: str) -> None:
        """suspend or resume."""
        if not self._refuse_readonly(verb):
            self._spawn(self._act(verb, tenant_id), "actions")

    def open_form(self, tenant_id: str | None) -> None:
        if self._refuse_readonly("create" if tenant_id is None else "edit"):
            return
        record = None
        if tenant_id is not None:
            record = self.tenants.get(tenant_id)
            if record is None:
                self.notify(f"no tenant named {tenant_id!r}", severity="error")
                return
        self.push_screen(TenantFormScreen(record))

    def on_tenant_form_requested(self, message: TenantFormRequested) -> None:
        self.open_form(message.tenant_id)

    def on_tenant_form_submitted(self, message: TenantFormSubmitted) -> None:
        self._spawn(self._submit_form(message), "actions")

    async def _submit_form(self, form: TenantFormSubmitted) -> None:
        verb = "create" if form.create else "update"
        try:
            if form.create:
                record = await self.source.create(form.body)
                text = f"created {form.tenant_id}"
            else:
                record = await self.source.update(form.tenant_id, form.body)
                fields = ", ".join("bot token" if k == "bot_token" else k for k in form.body)
                text = f"updated {form.tenant_id}: {fields}"
        except SourceError as exc:
            self.post_message(ActionFinished(f"{verb} {form.tenant_id}: {exc}", severity="error"))
        else:
            self.post_message(ActionFinished(text, record=record))

    async def _act(self, verb: str, tenant_id: str) -> None:
        try:
            if verb in ("suspend", "resume"):
                record = await getattr(self.source, verb)(tenant_id)
                done = "suspended" if verb == "suspend" else "resumed"
                self.post_message(ActionFinished(f"{tenant_id} {done}", record=record))
            elif verb == "wake":
                record = await self.source.wake(tenant_id)
                self.post_message(ActionFinished(f"waking {tenant_id}", record=record))
            elif verb == "sleep":
                record = await self.source.sleep(tenant_id)
                self.post_message(ActionFinished(f"{tenant_id} is asleep", record=record))
            else:
                await self.source.delete(tenant_id)
                self.post_message(ActionFinished(f"deleted {tenant_id}", deleted=tenant_id))
        except SourceError as exc:
            self.post_message(ActionFinished(f"{verb} {tenant_id}: {exc}", severity="error"))

    def on_action_finished(self, message: ActionFinished) -> None:
        self.notify(
            message.text, severity=message.severity, timeout=8 if message.severity == "error" else 3
        )
        if message.record is not None:
            self._apply_record(message.record)
        if message.deleted is not None:
            self.tenants.pop(message.deleted, None)
        self.mark_dirty()

    def config_saved(self, changes: Mapping[str, int], config: dict[str, Any]) -> None:
        if self.status is not None:
            self.status = {**self.status, "config": config}
            self.mark_dirty()
        shown = ", ".join(f"{k}={v}" for k, v in changes.items())
        self.notify(f"config saved: {shown}", timeout=4)
        self.poll_status()

    # -- navigation ------------------------------------------------------------------
    def _back_to_tenants(self) -> None:
        while len(self.screen_stack) > 1:
            self.pop_screen()

    def open_describe(self, tenant_id: str) -> None:
        self.push_screen(DescribeScreen(self, tenant_id))

    def open_logs(self, tenant_id: str) -> None:
        self.push_screen(LogsScreen(self, tenant_id))

    def open_audit(self, tenant_id: str | None = None) -> None:
        self.push_screen(AuditScreen(self, tenant_id))

    def open_snapshots(self, tenant_id: str) -> None:
        self.push_screen(SnapshotsScreen(self, tenant_id))

    def open_config(self) -> None:
        if not isinstance(self.screen, ConfigScreen):
            self.push_screen(ConfigScreen(self))

    # -- what screens ask for (they post, the app acts) ----------------------------------
    def on_tenant_action_requested(self, message: TenantActionRequested) -> None:
        self._tenant_action(message.action, message.tenant_id)

    def on_config_editor_requested(self, message: ConfigEditorRequested) -> None:
        self.open_config()

    def on_reconnect_requested(self, message: ReconnectRequested) -> None:
        self.reconnect()

    def on_config_saved(self, message: ConfigSaved) -> None:
        self.config_saved(message.changes, message.config)

    def _tenant_action(self, action: str, tenant_id: str) -> None:
        {
            "describe": self.open_describe,
            "logs": self.open_logs,
            "snapshots": self.open_snapshots,
            "wake": self.request_wake,
            "sleep": self.request_sleep,
            "delete": self.request_delete,
            "suspend": lambda t: self.request_hold("suspend", t),
            "resume": lambda t: self.request_hold("resume", t),
            "edit": self.open_form,
            "audit": self.open_audit,
        }[action](tenant_id)

    def open_health(self) -> None:
        if not isinstance(self.screen, HealthScreen):
            screen = HealthScreen()
            self.push_screen(screen, wait_for_dismiss=False)
            self.call_after_refresh(screen.show, self.status, self.status_error)
        self.poll_status()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.help_sections(), readonly=self.readonly))

    def action_command(self) -> None:
        if isinstance(self.screen, CommandPrompt):
            return
        self.push_screen(CommandPrompt(lambda: list(self.tenants)), self._command_entered)

    def _command_entered(self, text: str | None) -> None:
        if text is None or not text.strip():
            return
        try:
            command = parse_command(text)
        except CommandError as exc:
            self.notify(str(exc), severity="error")
            return
        name, tenant_id = command.name, command.tenant_id
        if tenant_id is not None and tenant_id not in self.tenants:
            self.notify(f"no tenant named {tenant_id!r}", severity="error")
            return
        if tenant_id is not None:  # the commands that take a tenant (CommandSpec.takes_tenant)
            self._tenant_action(name, tenant_id)
            return
        global_commands: dict[str, Callable[[], object]] = {
            "quit": self.exit,
            "tenants": self._back_to_tenants,
            "config": self.open_config,
            "health": self.open_health,
            "audit": self.open_audit,
            "help": self.action_help,
        }
        global_commands[name]()

    def help_sections(self) -> list[tuple[str, list[HelpRow]]]:
        restore_off = frozenset({"restore"}) if self.readonly else frozenset()
        sections: list[tuple[str, type[Any], frozenset[str]]] = [
            ("Tenant table", TenantsScreen, MUTATING_ACTIONS if self.readonly else frozenset()),
            ("Everywhere", OtmApp, frozenset()),
            ("Describe", DescribeScreen, frozenset()),
            ("Logs", LogsScreen, frozenset()),
            ("Audit log", AuditScreen, frozenset()),
            ("Snapshots", SnapshotsScreen, restore_off),
            ("Config editor", ConfigScreen, frozenset({"save"}) if self.readonly else frozenset()),
            ("Delete confirmation", ConfirmScreen, frozenset()),
            ("New/edit tenant", TenantFormScreen, frozenset()),
        ]
        out: list[tuple[str, list[HelpRow]]] = []
        for title, owner, disabled in sections:
            rows = []
            for binding in owner.BINDINGS:
                assert isinstance(binding, Binding)
                key = self.keymap.get(binding.id or "", binding.key)
                _, name, parameters = parse_action(binding.action)
                rows.append(
                    HelpRow(
                        self.get_key_display(Binding(key, binding.action)),
                        binding.description,
                        binding.tooltip,
                        tenant_command(name, parameters) in disabled,
                    )
                )
            out.append((title, rows))
        return out


def make_app(
    source: TenantSource,
    *,
    readonly: bool,
    clock: Clock = utc_now,
    timings: Timings | None = None,
    keymap: Mapping[str, str] | None = None,
) -> OtmApp:
    """The dashboard over ``source``; tests pass a fake source, a frozen clock and timings."""
    return OtmApp(
        source, readonly=readonly, clock=clock, timings=timings or Timings(), keymap=keymap
    )
