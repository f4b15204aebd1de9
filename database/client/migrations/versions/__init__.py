"""Revisions of the client database, oldest first by date prefix."""
