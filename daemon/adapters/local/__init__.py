"""The local-process Runtime adapter (runtime.py) and its helpers: processes, sandbox, logs,
run state, warm pool, the warm gateways' placeholder Bot API."""
