"""Workflow graphs and parameter mappings per task type, the catalog that loads them, and the renderer."""
