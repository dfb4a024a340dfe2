"""The agent (OpenClaw) as the daemon sees it: its config, activity and state."""
