"""Routers of the facade, one module per area; `api.app` includes them all."""
