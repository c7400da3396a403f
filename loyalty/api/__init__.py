"""Partner REST API v1: shared machinery (authentication, scopes, errors, idempotency, pagination)."""
