"""The model gateway: agents' only way to a model (OpenAI-compatible, per-tenant keys).

``keys`` mints and checks tenant keys, ``usage`` counts tokens per tenant, ``limits``
enforces per-tenant quotas, ``upstream_openai`` / ``upstream_bedrock`` forward, ``app`` serves
``/v1/chat/completions`` and ``/v1/models`` on the daemon's third listener.
"""
