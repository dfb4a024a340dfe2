"""The simulated outside world of otm, shipped in the package for tests and the local demo.

- :mod:`otm.devtools.fake_telegram`: a fake Telegram Bot API that records what bots send.
- :mod:`otm.devtools.stub_llm`: a deterministic OpenAI-compatible model server.
- :mod:`otm.devtools.agent_stub`: a light stand-in for an OpenClaw gateway in Telegram webhook mode.
- :mod:`otm.devtools.openclaw_config`: re-exports :mod:`daemon.agent.openclaw_config`
  (the renderer).

Each server module runs in-process (``async with``) or as ``python -m <module> --port N``.
"""
