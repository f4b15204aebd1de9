"""Alembic history of the client database (packaged with the code; run through `comfyws db`)."""
