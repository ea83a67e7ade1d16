import pytest
import torch

import envs  # noqa: F401  (registers the built-in families)


@pytest.fixture(autouse=True)
def _one_thread():
    # Two cores: torch threads beside MuJoCo's pool or a second pytest worker cost 1.3-3x.
    torch.set_num_threads(1)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
