"""A file handed to us never runs code when loaded: resume state, checkpoints and supernets are read
as tensors and plain data only (``torch.load(weights_only=True)``); a crafted file is one error
naming it, and its payload never runs."""
import json
import os

import pytest
import torch

from nasnet_det.errors import CheckpointError, SearchError


# a tiny pretraining run (never reached: each test is refused before training)
TINY_PRETRAIN = dict(genotype="nasnet_a", arch="1@192", stem="imagenet", stem_multiplier=1.0, data="digits",
                     img_size=32, batch_size=32, workers=0, progress=False, epochs=1)


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
    (out / "search.json").write_text(json.dumps(SearchConfig(strategy="random", evaluator="synthetic", out=str(out),
                                                             progress=False).to_dict()))
    torch.save({"strategy_name": "random", "payload": Payload(tmp_path / "ran")}, out / "state.pt")
    with pytest.raises(SearchError, match=r"state.pt \(tensors and plain data only\)") as refused:
        SearchRunner(SearchConfig(strategy="random", evaluator="synthetic", out=str(out), progress=False), resume=True)
    assert not (tmp_path / "ran").exists()
    _names_the_global_without_the_unsafe_advice(refused.value)


def _names_the_global_without_the_unsafe_advice(error):
    # torch's text tells the user to load with weights_only=False: for a crafted file, the protection off
    assert "os.system" in str(error) or "posix.system" in str(error), str(error)
    assert "weights_only" not in str(error)


def test_a_crafted_pretraining_checkpoint_is_refused_without_running(tmp_path):
    from nasnet_det.pretrain import PretrainConfig, train

    out = tmp_path / "pt"
    out.mkdir()
    torch.save({"model": Payload(tmp_path / "ran")}, out / "checkpoint.pth")
    cfg = PretrainConfig(**TINY_PRETRAIN, out=str(out))
    with pytest.raises(CheckpointError, match=r"checkpoint.pth \(tensors and plain data only\)") as refused:
        train(cfg, resume=True)
    assert not (tmp_path / "ran").exists()
    _names_the_global_without_the_unsafe_advice(refused.value)


def test_a_crafted_supernet_is_refused_without_running(tmp_path):
    from nasnet_det.search.oneshot import read_supernet
    from nasnet_det.search.space import SearchSpace

    path = tmp_path / "supernet.pt"
    torch.save({"model": Payload(tmp_path / "ran"), "space": SearchSpace().describe()}, path)
    with pytest.raises(SearchError, match="tensors and plain data only") as refused:
        read_supernet(str(path))
    assert not (tmp_path / "ran").exists()
    _names_the_global_without_the_unsafe_advice(refused.value)


def test_a_cifar_batch_loads_its_arrays_and_a_crafted_one_runs_nothing(tmp_path):
    import pickle

    import numpy as np

    from nasnet_det.data.classification import cifar10
    from nasnet_det.errors import DataError

    good = tmp_path / "cifar"
    good.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(good / name, "wb") as f:
            pickle.dump({"data": rng.integers(0, 255, (4, 3072), dtype=np.uint8), "labels": [0, 1, 2, 3],
                         "batch_label": name, "filenames": [b"a.png"] * 4}, f)
    data = cifar10(str(good), holdout=False)
    assert len(data.train) == 20 and len(data.val) == 4
    # the paper's hold-out split needs the full 50,000: 20 images would validate on none
    with pytest.raises(DataError, match=r"holds 20 training images: the paper's hold-out split validates on images 45,000"):
        cifar10(str(good), holdout=True)
    with open(good / "data_batch_2", "wb") as f:  # another shape than CIFAR's
        pickle.dump({"data": rng.integers(0, 255, (4, 100), dtype=np.uint8), "labels": [0, 1, 2, 3]}, f)
    with pytest.raises(DataError, match=r"data_batch_2 is not a CIFAR-10 python batch .*got data \(4, 100\)"):
        cifar10(str(good), holdout=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    with open(bad / "data_batch_1", "wb") as f:
        pickle.dump({"data": Payload(tmp_path / "ran")}, f)
    with pytest.raises(DataError, match="not part of the CIFAR-10 format"):
        cifar10(str(bad))
    assert not (tmp_path / "ran").exists()


def test_a_stored_foreign_evaluator_is_not_imported_on_resume(tmp_path):
    import json
    import subprocess
    import sys

    from nasnet_det.search.runner import SearchConfig

    out = tmp_path / "run"
    out.mkdir()
    (tmp_path / "evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\ndef f(g, s): return {{'reward': 0}}\n")
    cfg = SearchConfig(evaluator="evil:f", out=str(out)).to_dict()
    (out / "search.json").write_text(json.dumps(cfg))
    (out / "trials.jsonl").write_text("")
    r = subprocess.run([sys.executable, "-m", "nasnet_det", "search", "--resume", "--out", str(out)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert r.returncode == 1 and "not one of ours" in r.stderr and "--evaluator evil:f" in r.stderr
    assert not (tmp_path / "ran").exists()


def test_shipped_config_names_resolve_inside_the_zoo_only():
    from nasnet_det import model_zoo
    from nasnet_det.errors import ConfigError

    assert model_zoo.get_config_file("demo_fpn_cpu.yaml").endswith("demo_fpn_cpu.yaml")
    for name in ("/etc/hostname", "../Makefile", "../../setup.py"):
        with pytest.raises(ConfigError, match="not a shipped config"):
            model_zoo.get_config_file(name)


def test_pretraining_into_a_finished_run_without_resume_overwrites_nothing(tmp_path):
    from nasnet_det.pretrain import PretrainConfig, train

    out = tmp_path / "pt"
    out.mkdir()
    (out / "checkpoint.pth").write_bytes(b"earlier run")
    cfg = PretrainConfig(**TINY_PRETRAIN, out=str(out))
    with pytest.raises(CheckpointError, match="use --resume"):
        train(cfg)
    assert (out / "checkpoint.pth").read_bytes() == b"earlier run"


@pytest.mark.parametrize("signum,code", [(15, 143), (2, 130)])
def test_sigterm_or_sigint_stops_a_search_in_one_line_and_resume_completes_it(tmp_path, signum, code):
    # both signals go through one handler: the resume after it runs once (SIGTERM, a scheduler's)
    import signal
    import subprocess
    import sys
    import time

    from nasnet_det.search.trials import read_trials

    out = str(tmp_path / "run")
    cmd = [sys.executable, "-m", "nasnet_det", "search", "--strategy", "random", "--evaluator", "synthetic",
           "--synthetic-seconds", "0.3", "--budget", "12", "--workers", "2", "--out", out, "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(read_trials(os.path.join(out, "trials.jsonl"))) < 3:
        time.sleep(0.1)
    proc.send_signal(signal.Signals(signum))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(f"stopped by {signal.Signals(signum).name}")
    if signum != signal.SIGTERM:
        return
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(t["id"] for t in read_trials(os.path.join(out, "trials.jsonl")) if t["final"]) == list(range(12))


def test_pkl_weights_are_refused_unless_the_user_opts_in(tmp_path, monkeypatch):
    import pickle

    pytest.importorskip("detectron2")
    from nasnet_det.detection.checkpoint import ALLOW_PICKLE, NASNetCheckpointer

    path = tmp_path / "weights.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": Payload(tmp_path / "ran")}, f)
    monkeypatch.delenv(ALLOW_PICKLE, raising=False)
    with pytest.raises(CheckpointError, match="refusing a .pkl checkpoint .* --allow-pickle"):
        NASNetCheckpointer(torch.nn.Linear(2, 2)).load(str(path))
    assert not (tmp_path / "ran").exists()


def test_a_second_writer_into_a_run_folder_is_refused_naming_the_holder(tmp_path):
    import subprocess
    import sys

    from nasnet_det.io import FolderLock

    out = tmp_path / "run"
    lock = FolderLock(str(out)).acquire()
    try:
        r = subprocess.run([sys.executable, "-m", "nasnet_det", "search", "--evaluator", "synthetic", "--budget", "2",
                            "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and f"cannot run this search in {out}: another process (pid {os.getpid()})" in r.stderr
        r = subprocess.run([sys.executable, "-m", "nasnet_det", "pretrain", "--epochs", "1", "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and f"cannot run this pretraining in {out}: another process (pid {os.getpid()})" in r.stderr
        r = subprocess.run([sys.executable, "-m", "nasnet_det", "train-net", "--config", "demo_fpn_cpu.yaml",
                            "OUTPUT_DIR", str(out)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 1 and f"cannot run this detection run in {out}: another process" in r.stderr
        assert sorted(os.listdir(out)) == [".lock"]  # nothing written
    finally:
        lock.release()
    # released: the same search now runs
    r = subprocess.run([sys.executable, "-m", "nasnet_det", "search", "--evaluator", "synthetic", "--budget", "2",
                        "--workers", "1", "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_a_config_with_a_python_tag_is_refused_without_running(tmp_path):
    pytest.importorskip("detectron2")
    from nasnet_det.detection.config import get_config
    from nasnet_det.errors import ConfigError

    marker = tmp_path / "ran"
    base = tmp_path / "base.yaml"
    base.write_text(f"MODEL:\n  DEVICE: !!python/object/apply:os.system [\"touch {marker}\"]\n")
    child = tmp_path / "child.yaml"
    child.write_text("_BASE_: base.yaml\nSOLVER:\n  MAX_ITER: 3\n")
    with pytest.raises(ConfigError, match=r"base.yaml: refusing a YAML tag that builds Python objects"):
        get_config(str(child))
    assert not marker.exists()
    loop = tmp_path / "loop.yaml"
    loop.write_text("_BASE_: loop.yaml\n")
    with pytest.raises(ConfigError, match="_BASE_ loop"):
        get_config(str(loop))
