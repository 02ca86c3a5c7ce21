"""Frozen value objects shared by every layer: digests, ids, events, versions."""
