"""Adapters implementing the ports in daemon.ports."""
