"""`otm tenant ...`: reads (read.py), writes (write.py), model gateway (model.py)."""

from otm.cmd_tenant.read import app

__all__ = ["app"]
