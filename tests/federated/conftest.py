"""One intra-op thread for these small models: on a shared 2-core machine torch's thread pool
spins against other processes and a test of milliseconds takes seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
