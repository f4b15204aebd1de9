"""Revisions of the shared database, oldest first by date prefix."""
