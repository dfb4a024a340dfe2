"""A light stand-in for an OpenClaw gateway in Telegram webhook mode (aiohttp + stdlib only).

Run as ``python -m otm.devtools.agent_stub`` with the same environment as OpenClaw
(``OPENCLAW_STATE_DIR``, ``OPENCLAW_CONFIG_PATH``, ``HOME``) and the same ``openclaw.json``.
It reproduces the behaviour the orchestrator depends on, as measured on OpenClaw 2026.9.6:
probes on the gateway port, getMe → listen → setWebhook at startup, a durable and
de-duplicating webhook, ordered per-chat turns, DM policies, minimal hooks and a graceful
SIGTERM drain. Extra knobs: ``OTM_AGENT_BOOT_DELAY_S``, ``OTM_AGENT_DRAIN_TIMEOUT_S``,
``OTM_AGENT_RETRY_INITIAL_S``, ``OTM_AGENT_RETRY_MAX_S``, ``OTM_AGENT_LOG_LEVEL``.

Without a model provider, a turn replies ``echo: <text> (#<n>)`` with ``n`` the tenant's
persisted turn counter (``agents/main/agent/counter.json`` in the state dir).
"""
