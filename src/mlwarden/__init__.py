"""mlwarden."""
