"""Tracked messages: validation, the send pipeline, events, claims, batches, dead letters."""
