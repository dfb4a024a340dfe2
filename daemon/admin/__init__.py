"""The admin HTTP API: route assembly, shared helpers, lifecycle, watch, model."""
