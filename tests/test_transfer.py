"""Ranking against public ground truths: the NAS-Bench-301 importer, the cells reader, the spread
sample, the prior method (features, fit, registration), the transfer table's joins, and the
photo-rotation task. The truth files are written here, small, in the public formats."""
import json
import os
import random
import subprocess
import sys

import pytest

from nasnet_det import genotypes
from nasnet_det.benchmarks import transfer
from nasnet_det.benchmarks.public import read_truth, spread_sample
from nasnet_det.errors import GenotypeError, UserError
from nasnet_det.search import prior
from nasnet_det.search.space import SearchSpace

# DARTS_V2 (quark0/darts cnn/genotypes.py) in NASLib's compact encoding: (input, op index) pairs,
# op indices into ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
# "dil_conv_3x3", "dil_conv_5x5")
DARTS_V2_COMPACT = [[(0, 3), (1, 3), (0, 3), (1, 3), (1, 3), (0, 2), (0, 2), (2, 5)],
                    [(0, 0), (1, 0), (2, 2), (1, 0), (0, 0), (2, 2), (2, 2), (1, 0)]]
DARTS_V1_COMPACT = [[(1, 3), (0, 3), (0, 2), (1, 3), (0, 2), (1, 3), (0, 3), (2, 2)],
                    [(0, 0), (1, 0), (2, 2), (0, 0), (0, 0), (2, 2), (2, 2), (0, 1)]]


def _nb301_file(path, cells):
    """NASLib's zc_nasbench301.json layout: compact keys (as Python tuples, as NASLib writes them)."""
    table = {str([[tuple(p) for p in c] for c in compact]): {"val_accuracy": acc, "params": 1.0, "synflow": s}
             for compact, acc, s in cells}
    with open(path, "w") as f:
        json.dump({"nasbench301": {"cifar10": table}}, f)
    return str(path)


def test_nb301_keys_import_as_the_published_darts_cells_and_bad_keys_are_one_line(tmp_path):
    assert genotypes.from_naslib_compact(DARTS_V2_COMPACT).normal == genotypes.DARTS_V2.normal
    assert genotypes.from_naslib_compact(DARTS_V2_COMPACT).reduction == genotypes.DARTS_V2.reduction
    v1 = genotypes.from_naslib_compact(DARTS_V1_COMPACT)
    assert (v1.normal, v1.reduction) == (genotypes.DARTS_V1.normal, genotypes.DARTS_V1.reduction)
    path = _nb301_file(tmp_path / "zc.json", [(DARTS_V2_COMPACT, 94.1, 3.0), (DARTS_V1_COMPACT, 93.2, 5.0)])
    records = read_truth(path)
    assert [r["accuracy"] for r in records] == [94.1, 93.2]
    assert genotypes.Genotype.from_dict(records[0]["genotype"]).normal == genotypes.DARTS_V2.normal
    assert records[1]["zc"] == {"params": 1.0, "synflow": 5.0}
    with pytest.raises(GenotypeError, match="entry 0: expected \\(input, op index 0-6\\)"):
        genotypes.from_naslib_compact([[(0, 9)] * 8, DARTS_V2_COMPACT[1]])
    bad = _nb301_file(tmp_path / "bad.json", [([[(0, 3)] * 7 + [(0, 7)], DARTS_V2_COMPACT[1]], 90.0, 1.0)])
    with pytest.raises(UserError, match="bad.json entry 0: .*op index"):
        read_truth(bad)


def test_cells_jsonl_truths_and_a_foreign_file_name_the_line(tmp_path):
    space = SearchSpace()
    lines = [{"genotype": space.decode(space.random(random.Random(i))).to_dict(), "cifar10_acc": 80.0 + i}
             for i in range(3)]
    good = tmp_path / "cells.jsonl"
    good.write_text("".join(json.dumps(x) + "\n" for x in lines))
    records = read_truth(str(good))
    assert [r["accuracy"] for r in records] == [80.0, 81.0, 82.0] and [r["id"] for r in records] == [0, 1, 2]
    bad = tmp_path / "other.jsonl"
    bad.write_text(json.dumps(lines[0]) + "\n" + json.dumps({"arch": [1, 2], "acc": 3}) + "\n")
    with pytest.raises(UserError, match="other.jsonl line 2: expected a JSON object with a 'genotype' key"):
        read_truth(str(bad))
    nan = tmp_path / "nan.jsonl"
    nan.write_text(json.dumps({**lines[0], "cifar10_acc": float("nan")}) + "\n")
    with pytest.raises(UserError, match="nan.jsonl line 1: no accuracy"):
        read_truth(str(nan))


def test_the_spread_sample_covers_the_accuracy_range_and_its_prefixes_too():
    records = [{"id": i, "accuracy": float(i)} for i in range(1000)]
    sample = spread_sample(records, 100, seed=3)
    assert len({r["id"] for r in sample}) == 100
    acc = sorted(r["accuracy"] for r in sample)
    assert all(10 * k <= a < 10 * (k + 1) for k, a in enumerate(acc))  # one from each tenth-percentile bin
    assert sample == spread_sample(records, 100, seed=3) and sample != spread_sample(records, 100, seed=4)
    half = [r["accuracy"] for r in sample[:50]]
    assert min(half) < 200 and max(half) > 800  # a prefix is spread too: the order is shuffled


def test_the_prior_scores_by_its_features_and_is_a_method_of_rank_and_search(tmp_path):
    sep = genotypes.cell([(0, 1, "sep_conv_3x3", "sep_conv_5x5")] * 5)
    pool = genotypes.cell([(0, 1, "max_pool_3x3", "avg_pool_3x3")] * 5)
    feats = prior.features(genotypes.make(sep, pool))
    named = dict(zip(prior.FEATURES, feats))
    assert named["normal.sep_conv"] == 1.0 and named["reduction.pool"] == 1.0 and named["normal.reads_cell_inputs"] == 1.0
    # fitted to data where sep convs help and pools hurt, the model says so on cells it never saw
    rng = random.Random(0)
    rows, acc = [], []
    for _ in range(60):
        f = [rng.random() for _ in prior.FEATURES]
        f[prior.FEATURES.index("normal.conv")] = 0.0  # a feature the data never varies
        rows.append(f)
        acc.append(90 + 2 * f[prior.FEATURES.index("normal.sep_conv")] - 3 * f[prior.FEATURES.index("normal.pool")])
    model = prior.fit(rows, acc)
    assert model["weights"][prior.FEATURES.index("normal.conv")] == 0.0
    assert prior.score(genotypes.make(sep, sep), model) > prior.score(genotypes.make(pool, sep), model)
    # the shipped model: fitted to NAS-Bench-301, it prefers separable convs to pools in the normal cell
    shipped = prior.load()
    assert shipped["cells"] == 500 and "NAS-Bench-301" in shipped["source"]
    assert prior.score(genotypes.make(sep, pool)) > prior.score(genotypes.make(pool, pool))
    # registered: rank --method prior scores without data, and a search takes it as its reward
    cells = tmp_path / "cells.jsonl"
    cells.write_text("".join(json.dumps({"genotype": g, "acc": a}) + "\n" for g, a in
                             (("nasnet_a", 1.0), ("darts_v2", 2.0), ("amoebanet_a", 3.0))))
    out = tmp_path / "scores.jsonl"
    r = subprocess.run([sys.executable, "-m", "nasnet_det", "rank", str(cells), "--method", "prior", "--out", str(out),
                        "--truth", "acc", "--no-progress"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    scores = [json.loads(line)["score"] for line in open(out)]
    assert scores == pytest.approx([prior.score(genotypes.get(n)) / 100 for n in ("nasnet_a", "darts_v2", "amoebanet_a")])
    # ... and the search's default reward: each child's reward is its prior score
    from nasnet_det.search.runner import SearchConfig, run_search

    assert SearchConfig(out=str(tmp_path / "x")).method == "prior+gradnorm"  # the default: docs/search.md
    cfg = SearchConfig(strategy="random", method="prior", workers=1, budget=3, out=str(tmp_path / "search"),
                       progress=False)
    done = run_search(cfg)
    assert [t["reward"] for t in done] == pytest.approx(
        [prior.score(genotypes.Genotype.from_dict(t["genotype"])) / 100 for t in done])
    assert SearchConfig(method="per-child", out=str(tmp_path / "x")).budget == 20 and cfg.budget == 3


def test_the_transfer_table_joins_each_score_to_its_own_cell(tmp_path):
    folder = tmp_path / "lamcts"
    (folder / "scores").mkdir(parents=True)
    truth = {i: 80.0 + i for i in range(20)}
    ids = list(truth)
    random.Random(1).shuffle(ids)  # score files in another order than the truth
    with open(folder / "scores" / "params_seed0.jsonl", "w") as f:
        for i in ids:
            f.write(json.dumps({"id": i, "score": float(i), "seconds": 0.5}) + "\n")
    for seed, sign in ((0, 1), (1, -1)):  # two seeds that disagree: test-retest tau -1
        with open(folder / "scores" / f"per-child:x_seed{seed}.jsonl", "w") as f:
            for i in ids:
                f.write(json.dumps({"id": i, "score": sign * float(i), "sotl": -float(i), "seconds": 2.0}) + "\n")
    rows = transfer.table(str(folder), truth, extra={"naslib:flops": {i: -float(i) for i in truth}})
    assert rows["params"]["all"]["kendall_tau"] == pytest.approx(1.0) and rows["params"]["seconds_per_cell"] == 0.5
    assert rows["params"]["band"]["cells"] == 15  # 85 % and above
    assert rows["params"]["half_a"]["cells"] + rows["params"]["half_b"]["cells"] == 20
    assert rows["per-child:x"]["retest_tau"] == pytest.approx(-1.0)
    assert rows["sotl:x"]["all"]["kendall_tau"] == pytest.approx(-1.0)
    assert rows["naslib:flops"]["all"]["kendall_tau"] == pytest.approx(-1.0)
    assert "| params | 20 | 1.000 |" in transfer.markdown("lamcts", rows, 20)


def test_photo_rotation_labels_are_the_rotations_of_real_photo_crops():
    import torch

    from nasnet_det.data import build

    data = build("photo-rotation", 16)
    assert data.num_classes == 4 and len(data.val) == 40 * 8 * 4
    x, y = data.val.tensors
    assert x.shape[1:] == (3, 16, 16) and y[:8].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert torch.equal(torch.rot90(x[0], 1, (1, 2)), x[1])  # one crop in its four rotations
    assert x.std() > 0.2  # photos, not a constant
    torch.manual_seed(0)
    img, label = data.train[0]
    assert img.shape == (3, 16, 16) and label in (0, 1, 2, 3)


def test_a_combination_is_the_mean_signed_z_score_against_reference_cells_and_files_give_the_same(tmp_path):
    import math

    from nasnet_det.search.child import ChildConfig
    from nasnet_det.search.ranking import RankConfig, Scorer

    child = ChildConfig(img_size=8, num_conv_filters=4, threads=1)
    scorer = Scorer(RankConfig("prior+gradnorm", child, reference=4))
    cells = [genotypes.NASNET_A, genotypes.DARTS_V2, genotypes.AMOEBANET_A]
    results = [scorer(g) for g in cells]
    (pm, ps), (gm, gs) = scorer.scales()["prior"], scorer.scales()["grad_norm"]
    for g, r in zip(cells, results):
        p = prior.score(g) / 100
        gn = Scorer(RankConfig("grad_norm", child))(g)["score"]
        assert r["components"] == pytest.approx({"prior": p, "grad_norm": math.log(gn)})
        z = ((p - pm) / ps - (math.log(gn) - gm) / gs) / 2
        assert r["score"] == pytest.approx(0.5 * (1 + math.erf(z / math.sqrt(2))))  # the normal CDF: in (0, 1)
    # the benchmark's derivation from the components' score files gives the scorer's numbers
    folder = tmp_path / "t"
    (folder / "scores").mkdir(parents=True)
    for name in ("prior", "grad_norm"):
        single = Scorer(RankConfig(name, child))
        with open(folder / "scores" / f"{name}_seed0.jsonl", "w") as f:
            for i, g in enumerate(cells):
                f.write(json.dumps({"id": i, "score": single(g)["score"], "seconds": 1.0}) + "\n")
    derived = transfer.combination_scores(str(folder), "prior+gradnorm", child)
    scorer16 = Scorer(RankConfig("prior+gradnorm", child))  # the benchmark's reference size
    assert [derived[i]["score"] for i in range(3)] == pytest.approx([scorer16(g)["score"] for g in cells])
    assert derived[0]["seconds"] == 2.0


def test_the_equal_time_pick_affords_cells_by_their_cost_and_reports_the_picks_percentile():
    truth = {i: float(i) for i in range(100)}
    perfect = {i: {"score": float(i), "seconds": 2.0} for i in truth}
    whole = transfer.equal_time(perfect, truth, cpu_seconds=1000.0, pool=50, seeds=3)
    assert whole["cells"] == 50 and whole["percentile"] == 1.0 and whole["std"] == 0.0  # scores the pool, picks its best
    some = transfer.equal_time(perfect, truth, cpu_seconds=20.0, pool=50, seeds=3)
    assert some["cells"] == 10 and 0.5 < some["percentile"] < 1.0  # the best of 10 random cells of 50
    worst = transfer.equal_time({i: {"score": -float(i), "seconds": 2.0} for i in truth}, truth, 1000.0, pool=50)
    assert worst["percentile"] == pytest.approx(1 / 50)
    assert transfer.equal_time(perfect, truth, cpu_seconds=1.0)["cells"] == 0


def test_the_cross_validated_prior_scores_each_cell_with_a_model_of_the_other_half():
    space = SearchSpace()
    rng = random.Random(0)
    cells = [{"id": i, "genotype": space.decode(space.random(rng)).to_dict(), "accuracy": rng.uniform(90, 94)}
             for i in range(40)]
    scores = transfer.cross_validated_prior(cells)
    changed = [dict(c) for c in cells]
    changed[0]["accuracy"] = 10.0  # a cell's own truth never reaches its own score
    again = transfer.cross_validated_prior(changed)
    assert again[0] == pytest.approx(scores[0]) and again != scores


def test_successive_halving_at_equal_time_pays_each_rung_and_picks_from_the_last():
    truth = {i: float(i) for i in range(90)}
    noisy = {i: {"score": float(i % 10), "seconds": 1.0} for i in truth}  # rung 0: sees only i % 10
    exact = {i: {"score": float(i), "seconds": 10.0} for i in truth}  # rung 1: exact, 10x the cost
    # 90 cells at rung 0 (90 s) and their best 30 at rung 1 (300 s): 390 s pays for the whole pool
    whole = transfer.equal_time_promoted((noisy, exact), truth, cpu_seconds=390.0, pool=90, seeds=2)
    assert whole["cells"] == 90 and whole["percentile"] == 1.0
    # 389 s pays for 89 cells at rung 0 only (89 + 10 * 30 = 389)
    assert transfer.equal_time_promoted((noisy, exact), truth, cpu_seconds=389.0, pool=90)["cells"] == 89
    assert transfer.equal_time_promoted((noisy, exact), truth, cpu_seconds=5.0)["cells"] == 0


def test_the_held_out_check_leaves_out_the_cells_that_chose_the_default(tmp_path):
    truth = {i: float(i) for i in range(60)}
    methods = {"prior": {i: {"score": float(i) if i >= 30 else -float(i), "seconds": 0.0} for i in truth}}
    sample = tmp_path / "sample.jsonl"
    sample.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(30)))  # where the score is wrong
    check = transfer.heldout_check(methods, truth, str(sample), ["prior"])["prior"]
    assert check["cells"] == 30 and check["kendall_tau"] == pytest.approx(1.0) and check["top5"] == pytest.approx(
        sum((30 - k) / 30 for k in range(5)) / 5)
