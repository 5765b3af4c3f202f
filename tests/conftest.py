"""Test-wide settings: one torch thread per xdist worker (2 workers on 2 cores), hypothesis profile,
and `results`: run directories and data of a test in its own temporary folder."""
import os

import pytest
import torch
from hypothesis import settings

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

settings.register_profile("ci", deadline=None, max_examples=30, derandomize=True)
settings.load_profile("ci")


@pytest.fixture
def results(tmp_path, monkeypatch):
    """Run directories under tmp_path/results and data under tmp_path/data, for this test only."""
    monkeypatch.setenv("LOGIT_KD_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("LOGIT_KD_DATA", str(tmp_path / "data"))
    return tmp_path / "results"
