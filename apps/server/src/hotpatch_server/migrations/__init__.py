"""Alembic migrations for the HotPatch schema (run on SQLite and PostgreSQL)."""
