"""Relay-number pool, per-order bindings, the Redis allocator and the router."""
