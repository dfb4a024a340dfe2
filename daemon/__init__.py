"""otm daemon: router, orchestrator, reconciler and warm pool in one asyncio process."""
