"""A file handed to us never runs code when loaded: resume state, checkpoints and supernets are read
as tensors and plain data only (``torch.load(weights_only=True)``); a crafted file is one error
naming it, and its payload never runs."""
import os

import pytest
import torch

from nasnet_det.errors import CheckpointError, SearchError


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_search_state_is_refused_without_running(tmp_path):
    from nasnet_det.search.runner import SearchConfig, SearchRunner

    out = tmp_path / "run"
    out.mkdir()
    (out / "trials.jsonl").write_text("")
    torch.save({"strategy_name": "random", "payload": Payload(tmp_path / "ran")}, out / "state.pt")
    with pytest.raises(SearchError, match=r"state.pt \(tensors and plain data only\)"):
        SearchRunner(SearchConfig(strategy="random", evaluator="synthetic", out=str(out), progress=False), resume=True)
    assert not (tmp_path / "ran").exists()


def test_a_crafted_pretraining_checkpoint_is_refused_without_running(tmp_path):
    from nasnet_det.pretrain import PretrainConfig, train

    out = tmp_path / "pt"
    out.mkdir()
    torch.save({"model": Payload(tmp_path / "ran")}, out / "checkpoint.pth")
    cfg = PretrainConfig(genotype="nasnet_a", arch="1@192", stem="imagenet", stem_multiplier=1.0, data="digits",
                         img_size=32, batch_size=32, workers=0, progress=False, epochs=1, out=str(out))
    with pytest.raises(CheckpointError, match=r"checkpoint.pth \(tensors and plain data only\)"):
        train(cfg, resume=True)
    assert not (tmp_path / "ran").exists()


def test_a_crafted_supernet_is_refused_without_running(tmp_path):
    from nasnet_det.search.oneshot import read_supernet
    from nasnet_det.search.space import SearchSpace

    path = tmp_path / "supernet.pt"
    torch.save({"model": Payload(tmp_path / "ran"), "space": SearchSpace().describe()}, path)
    with pytest.raises(SearchError, match="tensors and plain data only"):
        read_supernet(str(path))
    assert not (tmp_path / "ran").exists()
