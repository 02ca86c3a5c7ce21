"""Alembic migrations of the metadata schema (run through ``mlwarden.store.schema``)."""
