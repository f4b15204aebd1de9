"""Alembic history of the admin database (packaged with the code; run through `comfyws db`)."""
