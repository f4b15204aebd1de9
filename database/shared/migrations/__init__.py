"""Alembic history of the shared database (packaged with the code; run through `comfyws db`)."""
