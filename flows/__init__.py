"""Prefect flows: one per generation type, built from small tasks."""
