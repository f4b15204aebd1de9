"""Revisions of the admin database, oldest first by date prefix."""
