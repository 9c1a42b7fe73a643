"""Faults, run for real: kill -9 of the search, of its workers, mid-write, of pretraining and of
detection training, each followed by --resume; and the torn trial line that used to lose records."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from nasnet_det.io import torch_save
from nasnet_det.search.runner import SearchConfig, run_search
from nasnet_det.search.trials import TrialLog

from conftest import TINY_DETECTOR, alive, child_pids

TOOLS = os.path.join(os.path.dirname(__file__), "..", "tools")
HELPERS = os.path.dirname(__file__)


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([HELPERS, os.environ.get("PYTHONPATH", "")]),
            "PYTHONWARNINGS": "ignore"}


def _wait_for(condition, timeout=120.0, every=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


def test_a_torn_trial_line_is_cut_off_so_no_record_is_lost(tmp_path):
    cfg = SearchConfig(strategy="random", budget=3, workers=1, evaluator="synthetic", out=str(tmp_path / "s"),
                       progress=False)
    run_search(cfg)
    log = TrialLog(os.path.join(cfg.out, "trials.jsonl"))
    with open(log.path, "a") as f:
        f.write('{"id": 3, "genotype": {"name": "chi')  # a kill in the middle of an append
    done = run_search(SearchConfig(**{**cfg.__dict__, "budget": 5}), resume=True)
    lines = open(log.path).read().splitlines()
    assert len(done) == 5 and len(lines) == 5
    records = [json.loads(line) for line in lines]  # every line is a whole record again
    assert sorted(r["id"] for r in records if r["final"]) == [0, 1, 2, 3, 4]
    again = run_search(SearchConfig(**{**cfg.__dict__, "budget": 5}), resume=True)  # nothing beyond the budget
    assert len(again) == 5 and len(open(log.path).read().splitlines()) == 5


def test_a_run_folder_the_search_did_not_write_is_refused_at_start_naming_the_line(tmp_path):
    import shutil

    from nasnet_det.errors import SearchError

    cfg = SearchConfig(strategy="random", budget=3, workers=1, evaluator="synthetic", out=str(tmp_path / "s"),
                       progress=False)
    run_search(cfg)
    log = os.path.join(cfg.out, "trials.jsonl")
    lines = open(log).read().splitlines()
    record = json.loads(lines[1])
    cases = [({k: v for k, v in record.items() if k != "id"}, r"line 2: 'id' must be a child number, got None"),
             ({**record, "status": "done"}, r"line 2: 'status' must be one of ok, failed, got 'done'"),
             ({**record, "reward": "0.9"}, r"line 2: 'reward' must be a number, got '0.9'"),
             ({**record, "genotype": {**record["genotype"], "normal": [[0, 1, "conv_9x9", "identity"]]}},
              r"line 2: .*unknown op 'conv_9x9'")]
    for bad, message in cases:
        copy = str(tmp_path / "copy")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(cfg.out, copy)
        with open(os.path.join(copy, "trials.jsonl"), "w") as f:
            f.write("\n".join([lines[0], json.dumps(bad)] + lines[2:]) + "\n")
        with pytest.raises(SearchError, match=message):
            run_search(SearchConfig(**{**cfg.__dict__, "out": copy, "budget": 4}), resume=True)
    # a second final record of a child (two writers) counts once
    with open(log, "a") as f:
        f.write(lines[-1] + "\n")
    done = run_search(SearchConfig(**{**cfg.__dict__, "budget": 4}), resume=True)
    assert sorted(t["id"] for t in done) == [0, 1, 2, 3]
    # without the stored settings a resume cannot check them: refused, nothing changed
    os.remove(os.path.join(cfg.out, "search.json"))
    before = open(log).read()
    with pytest.raises(SearchError, match=r"holds a search but no search.json"):
        run_search(SearchConfig(**{**cfg.__dict__, "budget": 6}), resume=True)
    assert open(log).read() == before


def _start_search(out, *extra):
    args = [sys.executable, os.path.join(TOOLS, "search.py"), "--evaluator", "synthetic", "--synthetic-seconds", "600",
            "--budget", "4", "--workers", "2", "--out", out, "--no-progress", *extra]
    return subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_kill_9_of_a_ray_driver_leaves_nothing_running(tmp_path):
    pytest.importorskip("ray")
    proc = _start_search(str(tmp_path / "s"), "--backend", "ray")
    try:
        def tasks_running():
            named = [p for p in _descendants(proc.pid) if "_run_evaluation" in open(f"/proc/{p}/cmdline", "rb").read().decode(errors="ignore")]
            return named if len(named) == 2 else None

        _wait_for(tasks_running, timeout=180, every=1.0)
        before = [p for p in _descendants(proc.pid) if "reaper" not in open(f"/proc/{p}/cmdline", "rb").read().decode(errors="ignore")]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _wait_for(lambda: not any(alive(p) for p in before), timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()


WRITER = """
import sys, torch
from nasnet_det.io import torch_save
for version in range(1000):
    torch_save({"version": version, "data": torch.full((2_000_000,), float(version))}, sys.argv[1])
    print(version, flush=True)
"""


def test_kill_9_in_the_middle_of_a_checkpoint_write_keeps_a_whole_file(tmp_path):
    path = str(tmp_path / "checkpoint.pth")
    for round in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE, text=True, env=_env())
        for _ in range(2 + round):
            proc.stdout.readline()
        time.sleep(0.013 * (round + 1))  # somewhere inside a later write
        proc.kill()
        proc.wait()
        state = torch.load(path, weights_only=True)  # the last complete version, never half of one
        assert torch.equal(state["data"], torch.full((2_000_000,), float(state["version"])))
    torch_save({"version": -1}, path)  # the next write clears the dead writers' temporaries
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pth"]


PRETRAIN = ["--arch", "1@96", "--img-size", "16", "--epochs", "3", "--batch-size", "64", "--workers", "0",
            "--no-progress", "--lr", "0.02", "--drop-path-keep-prob", "0.7"]  # drop path: its schedule resumes too


def test_kill_9_of_pretraining_then_resume_equals_an_uninterrupted_run(tmp_path):
    tool = os.path.join(TOOLS, "pretrain.py")
    straight = str(tmp_path / "straight")
    subprocess.run([sys.executable, tool, *PRETRAIN, "--out", straight], check=True, env=_env(),
                   capture_output=True, timeout=600)
    killed = str(tmp_path / "killed")
    proc = subprocess.Popen([sys.executable, tool, *PRETRAIN, "--out", killed], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: os.path.exists(os.path.join(killed, "checkpoint.pth")) or proc.poll() is not None, timeout=600)
    proc.kill()
    proc.wait()
    assert not os.path.exists(os.path.join(killed, "backbone.pth")), "killed too late: the run had finished"
    resumed = subprocess.run([sys.executable, tool, *PRETRAIN, "--out", killed, "--resume"], env=_env(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stderr
    a, b = (json.load(open(os.path.join(d, "metrics.json"))) for d in (straight, killed))
    drop = ("img_per_s",)
    assert [{k: v for k, v in h.items() if k not in drop} for h in a["history"]] == \
           [{k: v for k, v in h.items() if k not in drop} for h in b["history"]]
    weights = [torch.load(os.path.join(d, "backbone.pth"), weights_only=True)["model"] for d in (straight, killed)]
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    checkpoints = [torch.load(os.path.join(d, "checkpoint.pth"), weights_only=True) for d in (straight, killed)]
    for name in ("model", "ema", "optimizer"):  # the training state too, not only the exported EMA weights
        a, b = checkpoints[0][name], checkpoints[1][name]
        if name == "optimizer":
            a, b = a["state"], b["state"]
            a = {f"{k}.{n}": t for k, v in a.items() for n, t in v.items() if torch.is_tensor(t)}
            b = {f"{k}.{n}": t for k, v in b.items() for n, t in v.items() if torch.is_tensor(t)}
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def _descendants(pid):
    found, todo = [], [pid]
    while todo:
        kids = child_pids(todo.pop())
        found += kids
        todo += kids
    return found


def _ranks(pid, marker):
    """Live descendants of ``pid`` whose command line holds ``marker`` (the rank processes)."""
    ranks = []
    for p in _descendants(pid):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if marker in f.read() and alive(p):
                    ranks.append(p)
        except OSError:
            pass
    return ranks


def _kill_launcher(proc, ranks):
    """kill -9 of the launcher alone (not its process group); its ranks must end by themselves."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    try:
        _wait_for(lambda: not any(alive(r) for r in ranks), timeout=15)
    finally:
        for r in ranks:
            if alive(r):
                os.kill(r, signal.SIGKILL)


def test_kill_9_of_torchrun_ends_both_pretraining_ranks_and_a_resume_equals_an_uninterrupted_run(tmp_path):
    tool = os.path.join(TOOLS, "pretrain.py")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", tool,
                *PRETRAIN[:PRETRAIN.index("--epochs")], "--epochs", "4", *PRETRAIN[PRETRAIN.index("--epochs") + 2:]]
    straight = str(tmp_path / "straight")
    done = subprocess.run([*torchrun, "--out", straight], env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    killed = str(tmp_path / "killed")
    proc = subprocess.Popen([*torchrun, "--out", killed], env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: os.path.exists(os.path.join(killed, "checkpoint.pth")) or proc.poll() is not None,
                  timeout=600)
        ranks = _ranks(proc.pid, b"pretrain.py")
        assert len(ranks) == 2, ranks
    finally:
        _kill_launcher(proc, _ranks(proc.pid, b"pretrain.py"))
    assert not os.path.exists(os.path.join(killed, "backbone.pth")), "killed too late: the run had finished"
    resumed = subprocess.run([*torchrun, "--out", killed, "--resume"], env=_env(), capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (json.load(open(os.path.join(d, "metrics.json"))) for d in (straight, killed))
    drop = ("img_per_s",)
    assert [{k: v for k, v in h.items() if k not in drop} for h in a["history"]] == \
           [{k: v for k, v in h.items() if k not in drop} for h in b["history"]]
    weights = [torch.load(os.path.join(d, "backbone.pth"), weights_only=True)["model"] for d in (straight, killed)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.parametrize("processes", [1, 2])
def test_kill_9_of_detection_training_then_resume_equals_an_uninterrupted_run(tmp_path, processes):
    # with 2 processes, also the path 8 GPUs take (launch, DDP over gloo, gathered evaluation), and a kill -9 of
    # the launcher alone ends both ranks
    pytest.importorskip("detectron2")
    from nasnet_det.detection.shapes import generate

    sets = generate(str(tmp_path / "shapes"), train=8, val=4, size=64, seed=0)

    def command(out):
        # random flips and ROI sampling: the draws a resume must repeat
        return [sys.executable, os.path.join(TOOLS, "train_net.py"), "--num-gpus", str(processes), "--config",
                "Base-NASNet-FPN.yaml", *TINY_DETECTOR, "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32",
                "MODEL.RPN.POST_NMS_TOPK_TRAIN", "100", "MODEL.RPN.POST_NMS_TOPK_TEST", "50",
                "DATASETS.TRAIN", f"('{sets['train']}',)", "DATASETS.TEST", f"('{sets['val']}',)",
                "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64", "INPUT.MIN_SIZE_TEST", "64",
                "INPUT.MAX_SIZE_TEST", "64", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.BASE_LR", "0.01", "SOLVER.STEPS",
                "()", "SOLVER.WARMUP_ITERS", "2", "SOLVER.MAX_ITER", "40", "SOLVER.CHECKPOINT_PERIOD", "5",
                "DATALOADER.NUM_WORKERS", "0", "SEED", "1", "OUTPUT_DIR", out]

    straight = str(tmp_path / "straight")
    done = subprocess.run(command(straight), env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    if processes > 1:  # both processes trained
        assert "World size: 2" in done.stdout + done.stderr and os.path.isfile(os.path.join(straight, "log.txt.rank1"))
    out = str(tmp_path / "det")
    args = command(out)
    proc = subprocess.Popen(args, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tag = os.path.join(out, "last_checkpoint")
    _wait_for(lambda: (os.path.exists(tag) and open(tag).read() >= "model_0000014.pth") or proc.poll() is not None,
              timeout=600)
    ranks = _ranks(proc.pid, b"multiprocessing") if processes > 1 else []
    assert processes == 1 or len(ranks) >= 2, ranks
    _kill_launcher(proc, ranks)
    last = open(tag).read().strip()
    assert last != "model_final.pth", "killed too late: the run had finished"
    # the tagged checkpoint is whole, plain data, and holds the stream's seed (SEED -1 draws one)
    assert torch.load(os.path.join(out, last), weights_only=True)["data_stream"] == {"seed": 1}
    resumed = subprocess.run(args[:2] + ["--resume"] + args[2:], env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    start = int(last[len("model_"):-len(".pth")]) + 1
    log = resumed.stdout + resumed.stderr
    assert f"Starting training from iteration {start}" in log
    assert "MODEL.ROI_HEADS.NUM_CLASSES: 80 -> 3" in log  # the package's own log lines reach the CLI's output
    assert open(tag).read().strip() == "model_final.pth"
    with open(os.path.join(out, "eval_results.json")) as f:
        bbox = json.load(f)[sets["val"]]["bbox"]
    assert set(bbox) >= {"AP", "AP50"}
    iterations = [json.loads(line)["iteration"] for line in open(os.path.join(out, "metrics.json"))
                  if line.strip() and "total_loss" in line]
    assert max(iterations) == 39 and min(i for i in iterations if i >= start) >= start
    # the resumed run read the same batches and drew the same flips and ROI samples: the same weights
    a, b = (torch.load(os.path.join(d, "model_final.pth"), weights_only=False)["model"] for d in (straight, out))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), \
        [k for k in a if not torch.equal(a[k], b[k])][:5]


def test_the_training_stream_restarts_at_any_iteration_with_the_same_batches_and_draws():
    pytest.importorskip("detectron2")
    import itertools
    import random

    from nasnet_det.detection.stream import GroupedBatches, StreamDataset

    # wide and tall records: aspect-ratio buckets fill unevenly, so a restart must rebuild them
    dicts = [{"image_id": i, "width": 40 if i % 3 else 20, "height": 30} for i in range(11)]
    mapper = lambda d: {**d, "draw": random.random()}  # an augmentation's draw from the global RNG
    data = StreamDataset(dicts, mapper, seed=7)

    def batches(start, rank=0, world=1, count=12):
        sampler = GroupedBatches(data, batch_size=3, rank=rank, world=world)
        sampler.start = start
        return list(itertools.islice(iter(sampler), count))

    straight = batches(0, count=30)
    assert all(len({data.wide[data.index(p)] for p in b}) == 1 for b in straight)  # one bucket a batch
    for start in (1, 5, 13):
        assert batches(start) == straight[start:start + 12]
    # two ranks read disjoint positions of one order (Detectron2's TrainingSampler split)
    ranks = [sum(batches(0, r, 2, count=6), []) for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1]) and all(p % 2 == r for r in (0, 1) for p in ranks[r])
    # a position is the same record with the same draw, in whatever order and process it is read
    forward = [data[p] for p in range(15)]
    assert [data[p] for p in reversed(range(15))] == forward[::-1]
    assert sorted(d["image_id"] for d in forward[:11]) == list(range(11))  # one pass is a permutation
    other = StreamDataset(dicts, mapper, seed=8)  # another seed, another order
    assert [other.index(p) for p in range(11)] != [data.index(p) for p in range(11)]


def _limit_file_size(size):
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))  # ulimit -f, in the child only


def test_a_full_disk_or_a_file_size_limit_is_one_line_and_keeps_what_was_written(tmp_path):
    # pretraining whose checkpoint does not fit under the limit: one line naming the file, no traceback
    out = tmp_path / "pre"
    done = subprocess.run([sys.executable, os.path.join(TOOLS, "pretrain.py"), *PRETRAIN, "--out", str(out)], env=_env(),
                          capture_output=True, text=True, timeout=600, preexec_fn=_limit_file_size(200_000))
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert last.startswith(f"error: cannot write {out / 'checkpoint.pth'}: ") and "ulimit -f" in last
    assert not [f for f in os.listdir(out) if ".tmp" in f]  # no half-written temporary left behind
    # detection training: its log.txt is refused first (the model's printout), then the checkpoint; one line
    # still, not a "--- Logging error ---" traceback per log line nor an atexit OSError from closing log.txt;
    # and none of the third-party notes (torch.jit, torch.fx, meshgrid, "No CUDA runtime") a command silences
    pytest.importorskip("detectron2")
    from nasnet_det.detection.shapes import generate

    sets = generate(str(tmp_path / "shapes"), train=4, val=2, size=64, seed=0)
    det = tmp_path / "det"
    done = subprocess.run([sys.executable, os.path.join(TOOLS, "train_net.py"), "--config", "Base-NASNet-FPN.yaml",
                           *TINY_DETECTOR, "DATASETS.TRAIN", f"('{sets['train']}',)", "DATASETS.TEST", "()",
                           "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "2", "SOLVER.CHECKPOINT_PERIOD", "1",
                           "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(det)], env=_env(), capture_output=True,
                          text=True, timeout=600, preexec_fn=_limit_file_size(40_000))
    noise = [s for s in ("Traceback", "Logging error", "Exception ignored", "FutureWarning", "is_fx_tracing",
                         "torch.meshgrid", "No CUDA runtime") if s in done.stdout + done.stderr]
    assert done.returncode == 1 and not noise, (noise, done.stderr[-3000:])
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: cannot write {det / 'model_0000000.pth'}: ")
    # a checkpoint that existed stays whole; the trial log keeps every complete record
    script = (
        "import sys, torch\n"
        "from nasnet_det.io import torch_save\n"
        "from nasnet_det.search.trials import TrialLog\n"
        "from nasnet_det.errors import StorageError\n"
        "path, log = sys.argv[1], TrialLog(sys.argv[2])\n"
        "log.append({'id': 0, 'status': 'ok'})\n"
        "for call in (lambda: torch_save({'w': torch.zeros(100000)}, path), lambda: log.append({'x': 'a' * 30000})):\n"
        "    try:\n"
        "        call()\n"
        "    except StorageError as e:\n"
        "        print(e)\n")
    ckpt, trials = tmp_path / "ckpt.pth", tmp_path / "trials.jsonl"
    torch_save({"w": torch.ones(3)}, str(ckpt))
    done = subprocess.run([sys.executable, "-c", script, str(ckpt), str(trials)], env=_env(), capture_output=True,
                          text=True, timeout=120, preexec_fn=_limit_file_size(20_000))
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and len(lines) == 2, done.stdout + done.stderr[-2000:]
    assert lines[0].startswith(f"cannot write {ckpt}: ") and "the previous file is intact" in lines[0]
    assert lines[1].startswith(f"cannot append to {trials}: file too large; every complete record before it is kept")
    assert torch.equal(torch.load(ckpt, weights_only=True)["w"], torch.ones(3))
    from nasnet_det.search.trials import TrialLog

    assert TrialLog(str(trials)).read() == [{"id": 0, "status": "ok"}]
