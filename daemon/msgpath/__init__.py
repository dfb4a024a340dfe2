"""The message path: durable buffer, delivery, wake, tenant cache, Redis pub/sub."""
