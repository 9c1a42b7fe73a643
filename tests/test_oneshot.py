"""One-shot search: the supernet computes what the interpreter builds, the search's outputs and
guarantees (resume, kill -9, exactly the budget), ENAS rounds, and the detection reward."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from nasnet_det import genotypes
from nasnet_det.errors import SearchError
from nasnet_det.modeling import NASNet, NASNetConfig
from nasnet_det.search.child import ChildConfig
from nasnet_det.search.oneshot import OneShotConfig, child_params
from nasnet_det.search.tasks.classification import ClassificationSupernet, calibration_batches, score_child
from nasnet_det.search.runner import SearchConfig, run_search
from nasnet_det.search.space import SearchSpace
from nasnet_det.search.strategies import build_strategy
from nasnet_det.search.supernet import SuperNet, recalibrate_batch_norm

TOOL = os.path.join(os.path.dirname(__file__), "..", "tools", "search.py")
TINY_CHILD = dict(epochs=1, batch_size=16, max_train_batches=3, img_size=16)


def _random_weights(net):
    # BN statistics and affine weights away from their defaults, so a wrong slice shows
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) + 0.5 if name.endswith("running_var") else t + 0.1 * torch.randn_like(t))


@pytest.mark.parametrize("stem,skip,combines,share", [("cifar", False, ("add",), False),
                                                      ("imagenet", True, ("add", "add_layernorm"), False),
                                                      ("cifar", False, ("add",), True)])
def test_a_path_of_the_supernet_is_the_child_that_build_nasnet_builds(stem, skip, combines, share):
    space = SearchSpace(3, combines=combines)
    cfg = NASNetConfig(num_cells=3 if stem == "imagenet" else 6, num_conv_filters=8, stem=stem, num_classes=5,
                       skip_reduction_layer_input=skip, dense_dropout_keep_prob=1.0, img_size=24)
    supernet = SuperNet(space, cfg, share_inputs=share).eval()
    _random_weights(supernet)
    rng = random.Random(1)
    # a chain cell concatenates one state: the next-but-one cell then reads its previous input as is
    chain = genotypes.cell([(0, 1, "sep_conv_3x3", "max_pool_3x3"), (2, 0, "conv_3x3", "identity"),
                            (3, 1, "avg_pool_3x3", "dil_conv_3x3")])
    cases = [space.decode(space.random(rng)) for _ in range(3)] + [genotypes.make(chain, chain)]
    x = torch.randn(2, 3, 24, 24)
    for genotype in cases:
        child = NASNet(genotype, cfg).eval()
        child.load_state_dict(supernet.child_state_dict(genotype), strict=True)
        with torch.no_grad():
            torch.testing.assert_close(supernet(x, genotype), child(x), rtol=1e-4, atol=1e-5)
        assert child_params(supernet, genotype) == sum(p.numel() for p in child.parameters())
    if stem == "cifar":  # the case above was exercised
        assert any(type(c.pre1).__name__ == "Identity" for c in NASNet(cases[-1], cfg).cells.values())


def test_the_supernet_refuses_what_it_cannot_share():
    cfg = NASNetConfig(num_cells=3, num_conv_filters=8, stem="cifar", num_classes=10)
    with pytest.raises(SearchError, match="add combines only"):
        SuperNet(SearchSpace(2, combines=("add", "concat")), cfg)
    supernet = SuperNet(SearchSpace(2, ops=("identity", "max_pool_3x3")), cfg)
    outside = genotypes.make(genotypes.cell([(0, 1, "sep_conv_3x3", "identity"), (2, 0, "identity", "identity")]),
                             genotypes.cell([(0, 1, "identity", "identity"), (2, 0, "identity", "identity")]))
    with pytest.raises(SearchError, match="sep_conv_3x3"):
        supernet(torch.randn(1, 3, 8, 8), outside)


def test_recalibration_re_estimates_the_path_statistics():
    space = SearchSpace(2)
    supernet = SuperNet(space, NASNetConfig(num_cells=3, num_conv_filters=8, stem="cifar", num_classes=10))
    genotype = space.decode(space.random(random.Random(0)))
    batches = [torch.randn(8, 3, 12, 12) * 3 + 2 for _ in range(3)]
    recalibrate_batch_norm(supernet, batches, lambda m, x: m(x, genotype))
    with torch.no_grad():
        stem_out = torch.cat([supernet.stem.conv(x) for x in batches])
    # a cumulative average over the calibration batches: the mean of the three batch means
    torch.testing.assert_close(supernet.stem.bn.running_mean, stem_out.mean((0, 2, 3)), rtol=1e-4, atol=1e-4)
    assert supernet.stem.bn.momentum == 0.1  # restored


def test_sample_is_reproducible_and_leaves_the_ask_stream_alone():
    space = SearchSpace()
    for name in ("random", "ppo", "evolution"):
        a, b = build_strategy(name, space, seed=3), build_strategy(name, space, seed=3)
        assert a.sample(7) == b.sample(7)
        a.sample(8)
        assert a.ask()["decisions"] == b.ask()["decisions"]


def _cfg(tmp_path, **changes):
    oneshot = {"probes": 0, **changes.pop("oneshot", dict(epochs=1))}  # probes cost a held-out pass per epoch
    return SearchConfig(**{**dict(strategy="random", method="oneshot", budget=4, workers=1, out=str(tmp_path / "run"),
                                  progress=False, child=ChildConfig(**TINY_CHILD), oneshot=OneShotConfig(**oneshot)),
                           **changes})


def test_oneshot_search_writes_the_outputs_and_its_rewards_are_the_supernets_scores(tmp_path):
    cfg = _cfg(tmp_path, strategy="evolution", strategy_options={"population_size": 3, "sample_size": 2},
               oneshot=dict(epochs=1, probes=4))
    done = run_search(cfg)
    assert len(done) == 4 and all(t["status"] == "ok" for t in done)
    for name in ("trials.jsonl", "genotype.json", "report.md", "search_curve.png", "supernet.pt", "search.json"):
        assert os.path.exists(os.path.join(cfg.out, name)), name
    report = open(os.path.join(cfg.out, "report.md")).read()
    assert "method: oneshot" in report
    # a reward is a function of the supernet's weights and the genotype: recompute it here
    trainer = ClassificationSupernet(cfg, SearchSpace())
    assert trainer.rounds == 1 and trainer.step == trainer.steps_per_epoch == 3
    # the supernet's curve per epoch: its loss, and its probe paths' accuracy with the weights as saved
    (entry,) = trainer.history
    assert entry["epoch"] == 1 and entry["step"] == 3 and 0 < entry["loss"] < 10
    probes = [SearchSpace().decode(SearchSpace().random_at(cfg.child.seed + 1, 10_000 + i)) for i in range(4)]
    assert trainer.probe(probes) == pytest.approx(entry["inherited"], abs=1e-9)
    assert f"| 1 | 3 | {entry['loss']:.4f} | {entry['inherited']:.4f} |" in report
    calibration = calibration_batches(trainer.data, cfg.child, cfg.oneshot.calibration_batches)
    for t in done[:2]:
        genotype = genotypes.Genotype.from_dict(t["genotype"])
        assert score_child(trainer.net, genotype, trainer.data, calibration) == pytest.approx(t["reward"], abs=1e-9)
        assert t["params"] == child_params(trainer.net, genotype)


def test_enas_alternates_supernet_rounds_and_controller_batches(tmp_path):
    cfg = _cfg(tmp_path, strategy="ppo", budget=5, strategy_options={"batch_size": 2},
               oneshot=dict(epochs=1, round_steps=2, round_children=2))
    run_search(cfg)
    state = torch.load(os.path.join(cfg.out, "supernet.pt"), weights_only=False)
    # children 0-1 after the warm-up, 2-3 after round 1, 4 after round 2
    assert state["rounds"] == 3 and state["step"] == 3 + 2 * 2
    strategy = torch.load(os.path.join(cfg.out, "state.pt"), weights_only=False)["strategy"]
    assert strategy["updates"] == 2


def test_a_search_killed_in_the_warm_up_resumes_to_the_weights_and_rewards_of_an_uninterrupted_one(tmp_path,
                                                                                               monkeypatch):
    uninterrupted = _cfg(tmp_path / "a", budget=2, oneshot=dict(epochs=2))
    straight = run_search(uninterrupted)
    killed = _cfg(tmp_path / "b", budget=2, oneshot=dict(epochs=2))
    original, calls = ClassificationSupernet._train_step, []

    def dies_at_step_5(self, *args):
        if len(calls) == 5:
            raise KeyboardInterrupt  # a kill in the warm-up's second epoch: only supernet.pt (epoch 1) is on disk
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(ClassificationSupernet, "_train_step", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        run_search(killed)
    assert torch.load(os.path.join(killed.out, "supernet.pt"), weights_only=True)["step"] == 3
    assert not {"trials.jsonl", "state.pt"} & set(os.listdir(killed.out))
    monkeypatch.setattr(ClassificationSupernet, "_train_step", original)
    with pytest.raises(SearchError, match="already holds a search: use --resume"):
        run_search(killed)  # a rerun (with these or other settings) cannot silently reuse its supernet.pt
    resumed = run_search(killed, resume=True)
    assert [(t["id"], t["reward"]) for t in resumed] == [(t["id"], t["reward"]) for t in straight]
    a, b = (torch.load(os.path.join(c.out, "supernet.pt"), weights_only=True) for c in (uninterrupted, killed))
    assert a["step"] == b["step"] == 6
    for k in a["model"]:  # the warm-up continued from its last epoch: bit for bit the same weights
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)


def _final(out):
    with open(os.path.join(out, "trials.jsonl")) as f:
        return [t for t in map(json.loads, f) if t["final"]]


def test_kill_9_of_a_oneshot_search_then_resume_ends_with_exactly_the_budget(tmp_path):
    out = str(tmp_path / "run")
    args = [sys.executable, TOOL, "--method", "oneshot", "--strategy", "ppo", "--budget", "8", "--workers", "1",
            "--oneshot-epochs", "1", "--oneshot-round-steps", "2", "--oneshot-round-children", "3", "--oneshot-probes", "0",
            "--strategy-option", "batch_size=3", "--child-batch-size", "16", "--child-max-train-batches", "4",
            "--out", out, "--no-progress"]
    proc = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trials = os.path.join(out, "trials.jsonl")
    deadline = time.time() + 300
    while time.time() < deadline and (not os.path.exists(trials) or len(_final(out)) < 2) and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(_final(out)) < 8, "killed too late: the run had finished"
    done = subprocess.run(args + ["--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    final = _final(out)
    assert len(final) == 8 and len({t["id"] for t in final}) == 8
    state = torch.load(os.path.join(out, "supernet.pt"), weights_only=False)
    # warm-up (4 steps) + 2 rounds of 2 (children 3-5 and 6-7): a round cut by the kill is redone, not doubled
    assert state["rounds"] == 3 and state["step"] == 4 + 2 * 2


def test_detection_reward_trains_the_supernet_inside_faster_rcnn(tmp_path):
    pytest.importorskip("detectron2")
    from nasnet_det.detection.oneshot import DetectionSupernet

    cfg = _cfg(tmp_path, task="detection", budget=2,
               child=ChildConfig(dataset="shapes", img_size=64, num_cells=3, stem_multiplier=1.0, batch_size=2,
                                 lr=0.02, max_train_batches=3))
    done = run_search(cfg)
    assert len(done) == 2 and all(t["status"] == "ok" for t in done)
    for t in done:
        assert set(t["metrics"]) == {"AP", "AP50", "AP75"} and t["params"] > 0
        assert t["reward"] == pytest.approx(t["metrics"]["AP50"] / 100 if t["metrics"]["AP50"] == t["metrics"]["AP50"] else 0)
    trainer = DetectionSupernet(cfg, SearchSpace(), progress=False)
    assert trainer.step == 3 and type(trainer.net.backbone.bottom_up).__name__ == "SupernetBackbone"
    # the winner is an ordinary genotype for MODEL.NASNET.GENOTYPE
    genotypes.get(os.path.join(cfg.out, "genotype.json"))


@pytest.mark.parametrize("kind", ["voc", "coco"])
def test_the_detection_reward_reads_voc_and_coco_sets_named_by_path(tmp_path, kind, request):
    pytest.importorskip("detectron2")
    from detectron2.data import DatasetCatalog

    from nasnet_det.detection.datasets import ensure_registered
    from nasnet_det.detection.oneshot import detection_splits
    from nasnet_det.detection.shapes import generate

    if kind == "voc":
        dataset = f"voc:{request.getfixturevalue('raccoon_voc')}"  # 200 real photos, VOC XML
    else:
        dataset = generate(str(tmp_path / "shapes"), train=12, val=4, size=64, seed=0)["train"]  # coco:DIR:JSON
    child = ChildConfig(dataset=dataset, img_size=64, num_cells=3, stem_multiplier=1.0, batch_size=2, lr=0.02,
                        max_train_batches=2)
    done = run_search(_cfg(tmp_path, task="detection", budget=1, child=child))
    assert len(done) == 1 and done[0]["status"] == "ok", done
    assert set(done[0]["metrics"]) == {"AP", "AP50", "AP75"}
    # the search trains and scores on two disjoint splits of the set (VOC's own ImageSets where it has them)
    train, val = detection_splits(dataset, str(tmp_path / "run"), 64, 0)
    ensure_registered(dataset)
    ids = [{d["file_name"] for d in DatasetCatalog.get(name)} for name in (dataset, train, val)]
    assert ids[1] and ids[2] and not ids[1] & ids[2] and ids[1] | ids[2] <= ids[0]


def test_supernet_trains_data_parallel_under_torchrun(tmp_path):
    out = str(tmp_path / "run")
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", TOOL, "--method", "oneshot",
            "--strategy", "ppo", "--budget", "4", "--workers", "1", "--oneshot-epochs", "1", "--oneshot-round-steps", "2",
            "--oneshot-round-children", "2", "--oneshot-probes", "0", "--strategy-option", "batch_size=2", "--child-batch-size", "16",
            "--child-max-train-batches", "3", "--out", out, "--no-progress"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(_final(out)) == 4
    state = torch.load(os.path.join(out, "supernet.pt"), weights_only=False)
    # both processes took every step (a collective waits for all): warm-up 3 + one round of 2
    assert state["step"] == 5 and state["rounds"] == 2


def test_oneshot_children_are_scored_on_ray(tmp_path, ray_cluster):
    cfg = _cfg(tmp_path, backend="ray", workers=2, budget=3)
    done = run_search(cfg)
    assert len(done) == 3 and all(t["status"] == "ok" and 0 <= t["reward"] <= 1 for t in done)
