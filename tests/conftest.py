import os

import pytest
import torch

# the raccoon photos shipped with the package (nasnet_det/data/raccoon: source, licence, how it was resized)
RACCOON = os.path.join(os.path.dirname(__file__), "..", "nasnet_det", "data", "raccoon")

# The tiny detector the detection tests build: NASNet-A 1@192 (one normal cell per stage, F = 8), BN
# everywhere (nothing frozen: no weights to load), a small FPN and box head; seconds per step on a CPU.
# A test appends what it varies (a later key overrides an earlier one).
TINY_DETECTOR = ["MODEL.DEVICE", "cpu", "MODEL.NASNET.ARCH", "1@192", "MODEL.NASNET.STEM_MULTIPLIER", "1.0",
                 "MODEL.NASNET.NORM", "BN", "MODEL.NASNET.HEAD_NORM", "BN", "MODEL.BACKBONE.FREEZE_AT", "0",
                 "MODEL.FPN.OUT_CHANNELS", "32", "MODEL.ROI_BOX_HEAD.FC_DIM", "64"]


def child_pids(pid):
    """pids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                found.append(int(entry))
    return found


def alive(pid):
    """Whether ``pid`` runs (not ended, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


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


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray (2 CPUs) for every in-process Ray test of the session; the search's Ray backend
    joins a Ray that is already up."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def raccoon_voc(tmp_path_factory):
    if not os.path.isdir(RACCOON):
        pytest.skip(f"raccoon photos not found at {RACCOON}")
    root = tmp_path_factory.mktemp("raccoon")
    os.symlink(os.path.join(RACCOON, "annotations"), root / "annotations")
    os.symlink(os.path.join(RACCOON, "images"), root / "images")
    ids = sorted((f[:-4] for f in os.listdir(os.path.join(RACCOON, "annotations")) if f.endswith(".xml")),
                 key=lambda s: int(s.split("-")[-1]))
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(ids[:60]) + "\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("\n".join(ids[60:80]) + "\n")
    return str(root)
