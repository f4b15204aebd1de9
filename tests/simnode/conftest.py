"""A simulated node shared by the tests of one module, for tests that do not depend on a fresh node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.simnode import SimNode, start_simnode


@pytest.fixture(scope="module")
def shared_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimNode]:
    node = start_simnode(data_dir=tmp_path_factory.mktemp("shared-simnode"))
    yield node
    node.stop()
