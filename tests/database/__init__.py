"""Tests of the database package: migrations, ledger repositories, aggregates and the `comfyws db` CLI."""
