import os

import pytest
import torch

# the raccoon photos shipped with the package (nasnet_det/data/raccoon: source, licence, how it was resized)
RACCOON = os.path.join(os.path.dirname(__file__), "..", "nasnet_det", "data", "raccoon")


def randomize_batch_norm(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Give every BN non-trivial statistics and affine parameters, so that a comparison of two
    models checks the BN layers too (freshly built BNs are identities in eval mode)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
