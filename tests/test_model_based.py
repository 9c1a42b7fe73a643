"""Model-based strategies (tpe, gp, predictor-evolution), the optuna journal of every search, and the
surrogate benchmark that measures strategies."""
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
from nasnet_det.search import SearchSpace, build_strategy, sep_conv_fraction
from nasnet_det.search.runner import SearchConfig, run_search
from nasnet_det.search.trials import read_trials

pytest.importorskip("optuna")
TOOL = os.path.join(os.path.dirname(__file__), "..", "tools", "search.py")
OPTIONS = {"tpe": {}, "gp": {"n_startup_trials": 4}, "predictor-evolution": {"population_size": 5, "steps": 50}}


def _reward(space, proposal):
    return sep_conv_fraction(space.decode(proposal["decisions"]))


@pytest.mark.parametrize("name", ["tpe", "gp", "predictor-evolution"])
def test_state_with_children_in_flight_round_trips_through_weights_only_load(name, tmp_path):
    space = SearchSpace(num_blocks=2)
    a = build_strategy(name, space, seed=3, **OPTIONS[name])
    for _ in range(12):
        proposal = a.ask()
        a.tell(proposal, _reward(space, proposal))
    in_flight = [a.ask() for _ in range(2)]  # asked, not yet told: what --resume re-submits
    torch.save(a.state_dict(), tmp_path / "s.pt")
    b = build_strategy(name, space, seed=99, **OPTIONS[name])
    b.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))  # plain data only
    for proposal in in_flight:
        a.tell(proposal, _reward(space, proposal))
        b.tell(proposal, _reward(space, proposal))
    for _ in range(4):
        pa, pb = a.ask(), b.ask()
        assert pa == pb
        a.tell(pa, _reward(space, pa))
        b.tell(pb, _reward(space, pb))


@pytest.mark.parametrize("name", ["tpe", "predictor-evolution"])
def test_a_batch_of_asks_before_any_result_holds_no_child_twice(name):
    # 2 ops, 1 block: 256 children; a sampler left alone repeats itself within a few dozen asks
    space = SearchSpace(num_blocks=1, ops=("identity", "max_pool_3x3"))
    strategy = build_strategy(name, space, seed=0, **OPTIONS[name])
    for _ in range(20):
        proposal = strategy.ask()
        strategy.tell(proposal, _reward(space, proposal))
    batch = [tuple(strategy.ask()["decisions"]) for _ in range(60)]
    assert len(set(batch)) == 60


def test_kill_9_during_model_fits_then_resume_matches_an_uninterrupted_run(tmp_path):
    # the driver spends most of its time fitting the ensemble (refitted every 2 results): the kill lands in a fit
    options = ["--strategy-option", "population_size=6", "--strategy-option", "steps=300",
               "--strategy-option", "refit_every=2", "--strategy-option", "ensemble=3"]
    common = ["--strategy", "predictor-evolution", "--evaluator", "synthetic", "--budget", "24", "--workers", "2",
              "--num-blocks", "2", "--no-progress", *options]
    reference = str(tmp_path / "reference")
    subprocess.run([sys.executable, TOOL, *common, "--out", reference], check=True, capture_output=True, timeout=600)
    out = str(tmp_path / "run")
    proc = subprocess.Popen([sys.executable, TOOL, *common, "--out", out], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    trials = os.path.join(out, "trials.jsonl")
    deadline = time.time() + 300
    while time.time() < deadline and len(read_trials(trials)) < 12:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 12 <= len(read_trials(trials)) < 24
    done = subprocess.run([sys.executable, TOOL, *common, "--out", out, "--resume"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]

    def children(folder):
        return {t["id"]: (t["genotype"]["normal"], t["genotype"]["reduction"])
                for t in read_trials(os.path.join(folder, "trials.jsonl")) if t["final"]}

    resumed, uninterrupted = children(out), children(reference)
    assert sorted(resumed) == list(range(24))
    assert resumed == uninterrupted


def test_every_search_keeps_an_optuna_journal_that_matches_its_trials_and_survives_a_torn_line(tmp_path):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    cfg = SearchConfig(strategy="evolution", budget=5, workers=2, evaluator="synthetic", out=str(tmp_path / "run"),
                       progress=False, num_blocks=2, strategy_options={"population_size": 3, "sample_size": 2})
    run_search(cfg)
    journal = os.path.join(cfg.out, "optuna.journal")
    with open(journal, "ab") as f:
        f.write(b'{"op_code": 4, "worker_id": "cut-by-kill')  # a line torn by kill -9
    run_search(SearchConfig(**{**cfg.__dict__, "budget": 8}), resume=True)
    study = optuna.load_study(study_name="search", storage=JournalStorage(JournalFileBackend(journal)))
    logged = {t["id"]: t for t in read_trials(os.path.join(cfg.out, "trials.jsonl")) if t["final"]}
    assert sorted(t.user_attrs["id"] for t in study.trials) == sorted(logged) == list(range(8))
    space = cfg.space
    for trial in study.trials:
        record = logged[trial.user_attrs["id"]]
        assert trial.value == pytest.approx(record["reward"])
        decoded = space.decode([space.decisions[i].choices.index(trial.params[n]) for i, n in enumerate(space.names)])
        assert decoded.normal.blocks == genotypes.Genotype.from_dict(record["genotype"]).normal.blocks
    assert study.user_attrs["strategy"] == "evolution"


def _fake_lamcts(path, count=300, seed=0):
    """Cells of the LaMCTS space with an accuracy that rises with their separable convs, plus noise."""
    from nasnet_det.benchmarks.strategies import SPACE

    space, rng = SearchSpace(**SPACE), random.Random(seed)
    with open(path, "w") as f:
        for i in range(count):
            g = space.decode(space.random(rng))
            g = genotypes.make(g.normal, g.normal)  # one cell for both roles, as in LaMCTS
            f.write(json.dumps({"id": i, "genotype": g.to_dict(),
                                "cifar10_acc": 85 + 10 * sep_conv_fraction(g) + rng.gauss(0, 0.3)}) + "\n")


def test_strategies_benchmark_measures_through_the_runner_and_resumes(tmp_path):
    from nasnet_det.benchmarks.strategies import benchmark_strategies

    truth = tmp_path / "cells.jsonl"
    _fake_lamcts(truth)
    out = str(tmp_path / "bench")
    kw = dict(strategies=("random", "tpe"), seeds=2, budgets={"random": 12, "tpe": 12}, space_sample=2000,
              log=lambda *_: None)
    result = benchmark_strategies(str(truth), out, **kw)
    assert result["surrogate_fidelity"]["tau"] > 0.6  # the trees learned the held-out cells' order
    for name in ("random", "tpe"):
        row = result["strategies"][name]
        assert row["seeds"] == 2 and row["budget"] == 12
        best_of_first_10 = []
        for seed in range(2):  # ordinary search folders: their trial logs are what the table reads
            trials = read_trials(os.path.join(out, "runs", name, f"seed{seed}", "trials.jsonl"))
            assert sorted(t["id"] for t in trials) == list(range(12))
            best_of_first_10.append(max(t["reward"] for t in trials if t["id"] < 10))
        assert row["best_after"]["10"]["mean"] == pytest.approx(sum(best_of_first_10) / 2)
        assert row["proposals_per_second"] > 0
    assert result["thresholds"]["top0.1"] > result["thresholds"]["top1"] > result["thresholds"]["median"]
    first = os.path.getmtime(os.path.join(out, "runs", "tpe", "seed1", "trials.jsonl"))
    again = benchmark_strategies(str(truth), out, **kw)  # finished runs are read, not rerun
    assert os.path.getmtime(os.path.join(out, "runs", "tpe", "seed1", "trials.jsonl")) == first
    assert again["strategies"] == {**result["strategies"]}
