"""Fixtures every test shares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def restore_torch_threads() -> Iterator[None]:
    """A test may pin torch to one thread; the next test in the same worker gets the count back.
    (Results of float reductions depend on the thread count, so a leaked setting would make a
    test that compares an in-process run with a subprocess run differ in the last bit.)"""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
