"""Test-wide settings: one torch thread per xdist worker (2 workers on 2 cores), hypothesis profile."""
import os

import torch
from hypothesis import settings

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

settings.register_profile("ci", deadline=None, max_examples=30, derandomize=True)
settings.load_profile("ci")
