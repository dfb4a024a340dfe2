"""otm: operator CLI and TUI for the OpenClaw Tenant Manager."""
