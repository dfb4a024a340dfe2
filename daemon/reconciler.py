"""Reconciler: List+Watch informer on tenant instances (filled in by the Kubernetes work)."""
