"""The ingestion gate and, with it, the defenses against poisoned data."""
