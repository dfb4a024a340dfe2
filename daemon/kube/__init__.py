"""Kubernetes parts: client, names, manifests, informer, pod status, warm pool."""
