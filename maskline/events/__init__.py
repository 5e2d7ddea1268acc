"""Outbound events: an outbox written in the same transaction as each change,
delivered, signed, by ``maskline worker`` to each owner's events URL."""
