"""Shared test plugins: each fixture module under tests/fixtures registers here."""

import pathlib

_FIXTURES = pathlib.Path(__file__).parent / "fixtures"
pytest_plugins = [
    f"tests.fixtures.{p.stem}" for p in sorted(_FIXTURES.glob("*.py")) if p.stem != "__init__"
]
