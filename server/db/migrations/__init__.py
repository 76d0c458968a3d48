"""Alembic migrations of the MedDAV schema (applied by meddav init and meddav db upgrade)."""
