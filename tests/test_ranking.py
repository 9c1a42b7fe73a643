"""Ranking cells: the metrics, the proxies, the rank command (resume, bad input), the shipped
ground truth, FairNAS paths and the supernet's initialisation recipe."""
import json
import math
import os
import random
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from nasnet_det import genotypes
from nasnet_det.benchmarks.ground_truth import CELLS
from nasnet_det.benchmarks.truth import SEEDS, TRUTH_CHILD, assemble, summarize, truth_cells
from nasnet_det.errors import SearchError
from nasnet_det.modeling import NASNetConfig
from nasnet_det.search import proxies
from nasnet_det.search.oneshot import fair_paths, read_supernet
from nasnet_det.search.ranking import rank_metrics
from nasnet_det.search.space import SearchSpace
from nasnet_det.search.supernet import SuperNet, parse_recipe

SMALL = ["--dataset", "digits", "--child-img-size", "8", "--child-num-cells", "3", "--child-num-conv-filters", "4",
         "--no-progress"]


def _rank(args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nasnet_det", "rank", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def _cells_file(path, n=4, extra=None):
    space = SearchSpace()
    with open(path, "w") as f:
        for i in range(n):
            g = space.decode(space.random(random.Random(i)))
            f.write(json.dumps({"genotype": g.to_dict(), "tag": f"c{i}", "acc": float(i), **(extra or {})}) + "\n")
    return path


def test_rank_metrics_on_a_known_ranking():
    truth = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    perfect = rank_metrics(truth, truth)
    assert perfect["kendall_tau"] == pytest.approx(1.0) and perfect["spearman_rho"] == pytest.approx(1.0)
    assert perfect["top_precision"] == 1.0 and perfect["regret"] == 0.0 and perfect["pick_percentile"] == 1.0
    reverse = rank_metrics(truth[::-1], truth)
    assert reverse["kendall_tau"] == pytest.approx(-1.0)
    assert reverse["regret"] == pytest.approx(0.9) and reverse["pick_percentile"] == pytest.approx(0.1)
    # one swap at the top: the pick is the second best cell
    swapped = rank_metrics(truth[:8] + [1.0, 0.9], truth)
    assert swapped["regret"] == pytest.approx(0.1) and swapped["top_precision"] == 0.0
    with pytest.raises(SearchError, match="at least 3"):
        rank_metrics([1, 2], [1, 2])


def test_proxies_compute_their_published_formulas_on_a_linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x, y = torch.randn(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    w = model[1].weight.detach().clone()
    # synflow, data-free: all-ones input through |W|; R = sum |W| 1 + |b|, so dR/dW = 1 and the score is sum |W|
    import copy
    assert proxies.synflow(copy.deepcopy(model), x, y) == pytest.approx(w.abs().sum().item(), rel=1e-6)
    # snip and grad_norm: |W * dL/dW| and ||dL/dW|| of the cross-entropy
    ref = copy.deepcopy(model)
    nn.functional.cross_entropy(ref(x), y).backward()
    g = ref[1].weight.grad
    assert proxies.snip(copy.deepcopy(model), x, y) == pytest.approx((w * g).abs().sum().item(), rel=1e-5)
    assert proxies.grad_norm(copy.deepcopy(model), x, y) == pytest.approx(g.norm().item(), rel=1e-5)
    # the vote is the mean rank under its proxies
    assert proxies.vote([{"a": 1, "b": 3}, {"a": 2, "b": 1}, {"a": 3, "b": 2}], ("a", "b")) == [0.5, 0.25, 0.75]


def test_naswot_and_jacob_cov_separate_a_collapsed_network_from_a_working_one():
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 8, 8), torch.zeros(16, dtype=torch.long)
    working = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(288, 10))
    collapsed = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(288, 10))
    nn.init.zeros_(collapsed[0].weight)
    nn.init.zeros_(collapsed[0].bias)  # every image gets the same codes and a zero Jacobian
    assert proxies.naswot(working, x, y) > proxies.naswot(collapsed, x, y)
    assert math.isfinite(proxies.naswot(working, x, y))
    assert proxies.jacob_cov(working, x, y) > proxies.jacob_cov(collapsed, x, y)


def test_rank_scores_copies_keys_resumes_and_reports_against_the_truth(tmp_path):
    cells = _cells_file(tmp_path / "cells.jsonl")
    out = tmp_path / "scores.jsonl"
    # a finished line in the .part file is not scored again: its (fake) score survives
    (tmp_path / "scores.jsonl.part").write_text(json.dumps({"line": 1, "method": "params", "score": -7.0,
                                                            "seconds": 0.0}) + "\n")
    r = _rank([str(cells), "--method", "params", "--out", str(out), "--truth", "acc", *SMALL])
    assert r.returncode == 0, r.stderr
    assert "Kendall tau" in r.stdout and "4 cells" in r.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [rec["tag"] for rec in records] == ["c0", "c1", "c2", "c3"]
    assert records[1]["score"] == -7.0
    from nasnet_det.modeling import build_nasnet
    net = build_nasnet(genotypes.Genotype.from_dict(records[0]["genotype"]), num_cells=3, num_conv_filters=4,
                       stem="cifar", stem_multiplier=3.0, num_classes=10, skip_reduction_layer_input=False,
                       dense_dropout_keep_prob=1.0, img_size=8)
    assert records[0]["score"] == sum(p.numel() for p in net.parameters())
    assert not (tmp_path / "scores.jsonl.part").exists()


def test_rank_bad_input_is_one_line(tmp_path):
    cells = _cells_file(tmp_path / "cells.jsonl", 3)
    with open(cells, "a") as f:
        f.write("{not json\n")
    r = _rank([str(cells), "--method", "params", "--out", str(tmp_path / "s.jsonl"), *SMALL])
    assert r.returncode == 1 and "line 4" in r.stderr and "Traceback" not in r.stderr
    r = _rank([str(cells), "--method", "magic", "--out", str(tmp_path / "s.jsonl"), *SMALL])
    assert r.returncode == 2 and "synflow" in r.stderr and "per-child" in r.stderr and "Traceback" not in r.stderr
    good = _cells_file(tmp_path / "good.jsonl", 3)
    r = _rank([str(good), "--method", "params", "--out", str(tmp_path / "s.jsonl"), "--truth", "nope", *SMALL])
    assert r.returncode == 1 and "truth key 'nope'" in r.stderr


def test_a_supernet_of_another_size_or_space_is_one_line(tmp_path):
    space = SearchSpace()
    from nasnet_det.search.child import ChildConfig
    state = {"model": {}, "space": space.describe(), "child": {"dataset": "digits", "img_size": 16, "num_cells": 6,
                                                               "num_conv_filters": 8, "stem_multiplier": 3.0}}
    path = str(tmp_path / "supernet.pt")
    torch.save(state, path)
    with pytest.raises(SearchError, match=r"another size: num_cells 6 \(this run: 3\)"):
        read_supernet(path, space, ChildConfig(dataset="digits", img_size=16, num_cells=3))
    with pytest.raises(SearchError, match="another space: num_blocks 5"):
        read_supernet(path, SearchSpace(num_blocks=3), ChildConfig())


def test_fair_paths_train_every_op_once_per_decision_and_repeat():
    space = SearchSpace()
    paths = fair_paths(space, seed=3, step=5)
    assert len(paths) == len(space.ops)
    for d, decision in enumerate(space.decisions):
        column = [p[d] for p in paths]
        if decision.kind == "op":
            assert sorted(column) == list(range(len(space.ops)))
        else:
            assert all(0 <= c < len(decision.choices) for c in column)
    assert fair_paths(space, 3, 5) == paths and fair_paths(space, 3, 6) != paths


def test_the_recipe_initialises_readers_ops_and_candidates_as_it_says():
    cfg = NASNetConfig(num_cells=3, num_conv_filters=8, stem="cifar", num_classes=10, img_size=16,
                       skip_reduction_layer_input=False, dense_dropout_keep_prob=1.0)
    space = SearchSpace(3)
    torch.manual_seed(0)
    net, plain = SuperNet(space, cfg), SuperNet(space, cfg, recipe=())
    slots = space.num_blocks + 2
    # equal_columns: a widest-layout reader gives the same output whichever slot holds a state
    for sn, same in ((net, True), (plain, False)):
        cell = sn.cells[sn.cell_names[2]]
        width = cell.pre0.conv.in_channels // slots
        state = torch.randn(2, width, 4, 4)
        outs = []
        for slot in (0, 3):
            x = torch.zeros(2, width * slots, 4, 4)
            x[:, slot * width:(slot + 1) * width] = state
            outs.append(cell.pre0.conv(x))
        assert torch.allclose(outs[0], outs[1]) == same
    # identity_ops: a stride-1 separable conv starts close to the identity (before its BN)
    cell = net.cells[net.cell_names[2]]
    op = cell.blocks[1]["2_sep_conv_3x3"]
    unit = op.layers[0]
    x = torch.randn(4, unit.depthwise.in_channels, 6, 6)
    with torch.no_grad():
        y = unit.pointwise(unit.depthwise(x))
    assert torch.corrcoef(torch.stack([x.flatten(), y.flatten()]))[0, 1] > 0.9
    # equal_candidates: one op on two inputs of one cell starts with equal weights
    a, b = cell.blocks[1]["2_conv_3x3"].state_dict(), cell.blocks[2]["3_conv_3x3"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(SearchError, match="unknown part"):
        parse_recipe("equal_columns,magic")


@pytest.mark.slow
def test_with_the_recipe_uniform_paths_learn_and_without_it_they_stay_near_chance(tmp_path):
    import dataclasses
    from nasnet_det.search.oneshot import OneShotConfig
    from nasnet_det.search.tasks.classification import ClassificationSupernet
    from nasnet_det.search.runner import SearchConfig

    losses = {}
    for recipe in ("all", "none"):
        cfg = SearchConfig(method="oneshot", strategy="random", workers=1, out=str(tmp_path / recipe), progress=False,
                           child=dataclasses.replace(TRUTH_CHILD, dataset="digits", img_size=8),
                           oneshot=OneShotConfig(epochs=12, recipe=recipe))
        os.makedirs(cfg.out)
        trainer = ClassificationSupernet(cfg, SearchSpace(), progress=False)
        trainer.train_round()
        losses[recipe] = trainer.last_loss
    assert losses["all"] < 1.5 < losses["none"], losses


def test_the_shipped_ground_truth_is_the_generators_cells_with_three_seeds():
    with open(CELLS) as f:
        records = [json.loads(line) for line in f]
    assert len(records) >= 150
    expected = {c["id"]: c for c in truth_cells()}
    sources = {r["source"] for r in records}
    assert sources == {"published", "mutation", "random"}
    for r in records:
        assert r["genotype"] == expected[r["id"]]["genotype"]
        assert len(r["accuracies"]) == len(SEEDS) and r["accuracy"] == pytest.approx(sum(r["accuracies"]) / 3)
        assert r["params"] > 0 and r["mult_adds"] > 0 and len(r["seconds"]) == 3
        genotypes.Genotype.from_dict(r["genotype"])
    s = summarize(records)
    assert s["cells"] == len(records) and len(s["tau_between_seeds"]) == 3


def test_ground_truth_generation_resumes_without_retraining(tmp_path):
    code = ("from nasnet_det.benchmarks.truth import generate, TRUTH_CHILD; import dataclasses; "
            "generate(%r, count=4, mutations=1, seeds=(0, 1), workers=2, progress=False, "
            "child=dataclasses.replace(TRUTH_CHILD, img_size=8, num_conv_filters=4, epochs=1, max_train_batches=2))")
    out = str(tmp_path / "gt")
    run = subprocess.run([sys.executable, "-c", code % out], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    runs = (tmp_path / "gt" / "runs.jsonl").read_text().splitlines()
    assert len(runs) == 8
    cells = [json.loads(line) for line in (tmp_path / "gt" / "cells.jsonl").read_text().splitlines()]
    assert [c["id"] for c in cells] == [0, 1, 2, 3] and cells[0]["source"] == "published"
    # a second run finds every (cell, seed) done: nothing is trained again
    (tmp_path / "gt" / "runs.jsonl").write_text("\n".join(runs[:6]) + "\n")
    again = subprocess.run([sys.executable, "-c", code % out], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    after = (tmp_path / "gt" / "runs.jsonl").read_text().splitlines()
    assert after[:6] == runs[:6] and len(after) == 8
    assert assemble(truth_cells(4, 1), [json.loads(line) for line in after], (0, 1))[3]["id"] == 3


def test_a_search_scores_children_with_a_zero_cost_method_without_training(tmp_path):
    from nasnet_det.modeling import build_nasnet
    from nasnet_det.search.child import ChildConfig, child_options
    from nasnet_det.search.runner import SearchConfig, run_search

    child = ChildConfig(img_size=8, num_cells=3, num_conv_filters=4)
    done = run_search(SearchConfig(strategy="random", method="params", budget=3, workers=1, out=str(tmp_path / "s"),
                                   progress=False, child=child))
    assert len(done) == 3
    for trial in done:
        net = build_nasnet(genotypes.Genotype.from_dict(trial["genotype"]), **child_options(child, 10, 8))
        assert trial["reward"] == sum(p.numel() for p in net.parameters())


def test_the_ranking_benchmark_joins_every_score_with_its_truth(tmp_path):
    """A truth equal to each cell's parameter count: params must rank it perfectly, flops nearly."""
    from nasnet_det.benchmarks.ranking import benchmark_ranking
    from nasnet_det.modeling import build_nasnet
    from nasnet_det.search.child import child_options

    child = TRUTH_CHILD
    truth = tmp_path / "truth.jsonl"
    with open(truth, "w") as f:
        for c in truth_cells()[:4]:
            net = build_nasnet(genotypes.Genotype.from_dict(c["genotype"]), **child_options(child, 10, child.img_size))
            acc = sum(p.numel() for p in net.parameters()) / 1e6
            f.write(json.dumps({**c, "accuracy": acc, "accuracies": [acc] * 3, "seconds": [1.0] * 3}) + "\n")
    result = benchmark_ranking(str(tmp_path / "out"), str(truth), parts=("cheap",), quick=True, progress=False)
    rows = result["methods"]
    assert rows["params"]["kendall_tau"] == pytest.approx(1.0) and rows["params"]["regret"] == 0.0
    assert set(rows) >= {"params", "flops", "synflow", "naswot", "jacob_cov", "snip", "grad_norm", "vote"}
    assert os.path.exists(tmp_path / "out" / "ranking.md") and os.path.exists(tmp_path / "out" / "scatter.png")
