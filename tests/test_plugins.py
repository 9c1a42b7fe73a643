"""--plugin: a user's module reaches every process of a command (local workers, Ray tasks, --resume)."""
import json
import os
import subprocess
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(TESTS, "..", "tools", "search.py")


def _search(*args, cwd=TESTS):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def _trials(out):
    with open(os.path.join(out, "trials.jsonl")) as f:
        return sorted((json.loads(line) for line in f), key=lambda t: t["id"])


@pytest.mark.process
def test_a_plugins_op_proxy_and_strategy_reach_local_workers_ray_tasks_and_resume(tmp_path):
    pytest.importorskip("ray")
    common = ["--plugin", "plugin_example", "--strategy", "first-op-first", "--method", "my_width", "--ops", "my_sep3",
              "max_pool_3x3", "identity", "--num-blocks", "2", "--workers", "2", "--no-progress"]
    local, ray = str(tmp_path / "local"), str(tmp_path / "ray")
    done = _search(*common, "--budget", "4", "--out", local)
    assert done.returncode == 0, done.stderr[-2000:]
    # a run folder names code: --resume imports it only when the command line names it too
    refused = _search("--resume", "--budget", "6", "--out", local)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].endswith("names the plug-in(s) plugin_example: resume with "
                                                           "--plugin plugin_example to trust them")
    done = _search("--resume", "--plugin", "plugin_example", "--budget", "6", "--out", local)
    assert done.returncode == 0, done.stderr[-2000:]
    done = _search(*common, "--budget", "6", "--backend", "ray", "--out", ray)
    assert done.returncode == 0, done.stderr[-2000:]
    by_local, by_ray = _trials(local), _trials(ray)
    assert len(by_local) == len(by_ray) == 6
    for a, b in zip(by_local, by_ray):  # the same seeded children, scored by the plug-in's proxy in each worker
        assert a["status"] == b["status"] == "ok" and a["genotype"] == b["genotype"]
        assert a["reward"] == pytest.approx(b["reward"]) and a["reward"] > 0  # not the failure reward
    assert any("my_sep3" in b["ops"] for t in by_local for b in t["genotype"]["normal"]["blocks"])


def test_an_op_registered_in_the_driver_only_stops_the_search_in_one_line(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(
        "from nasnet_det import cli\n"
        "from nasnet_det.search.runner import SearchConfig, run_search\n"
        "def main(argv=None):\n"
        "    import plugin_example  # registered in this process only, as a script's main() would\n"
        f"    run_search(SearchConfig(strategy='random', evaluator='synthetic', ops=('my_sep3', 'identity'), num_blocks=2,\n"
        f"                            budget=20, workers=2, out={str(tmp_path / 'run')!r}, progress=False))\n"
        "if __name__ == '__main__':\n"
        "    cli.run(main)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": TESTS})
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: a search worker does not know 'my_sep3': register it in a module and name that "
                           "module with --plugin MODULE")
    assert "Traceback" not in done.stderr
    trials = tmp_path / "run" / "trials.jsonl"  # no child was scored as a failure
    assert not trials.exists() or '"failed"' not in trials.read_text()


@pytest.mark.process
def test_a_plugins_task_and_command_run_from_the_command_line(tmp_path):
    # the design page's recipes for a one-shot task, a dataset form, a command, a benchmark section and a
    # combination of methods, added from outside the package
    done = subprocess.run([sys.executable, "-m", "nasnet_det", "count-ops", "nasnet_a", "--plugin", "plugin_example"],
                          capture_output=True, text=True, timeout=300, cwd=TESTS)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["avg_pool_3x3", "identity", "sep_conv_3x3", "sep_conv_5x5"]
    listed = subprocess.run([sys.executable, "-m", "nasnet_det", "--help", "--plugin", "plugin_example"],
                            capture_output=True, text=True, timeout=300, cwd=TESTS)
    assert "count-ops" in listed.stdout and "the ops of a genotype's normal cell" in listed.stdout
    section = subprocess.run([sys.executable, "-m", "nasnet_det", "benchmark", "op-params", "--channels", "8",
                              "--plugin", "plugin_example"], capture_output=True, text=True, timeout=300, cwd=TESTS)
    assert section.returncode == 0 and section.stdout.split() == [str(8 * 8 * 9 + 2 * 8)], section.stderr[-2000:]
    cells = tmp_path / "cells.jsonl"
    cells.write_text("".join(json.dumps({"genotype": g}) + "\n" for g in ("nasnet_a", "pnasnet_5", "darts_v2")))
    ranked = subprocess.run([sys.executable, os.path.join(TESTS, "..", "tools", "rank.py"), str(cells), "--method",
                             "my_width+prior", "--plugin", "plugin_example", "--out", str(tmp_path / "scores.jsonl"),
                             "--no-progress"], capture_output=True, text=True, timeout=300, cwd=TESTS)
    assert ranked.returncode == 0, ranked.stderr[-2000:]
    scores = [json.loads(line) for line in open(tmp_path / "scores.jsonl")]
    assert len(scores) == 3 and all(0 < s["score"] < 1 and set(s["components"]) == {"my_width", "prior"} for s in scores)
    out = str(tmp_path / "task")
    done = _search("--plugin", "plugin_example", "--method", "oneshot", "--task", "my-task", "--dataset", "half-digits",
                   "--strategy", "random",
                   "--budget", "4", "--workers", "2", "--oneshot-epochs", "1", "--oneshot-probes", "0",
                   "--child-batch-size", "16", "--child-max-train-batches", "3", "--child-img-size", "16",
                   "--no-progress", "--out", out)
    assert done.returncode == 0, done.stderr[-2000:]
    trials = _trials(out)
    assert len(trials) == 4 and all(t["status"] == "ok" and t["metrics"]["scored_by"] == "plugin_task" for t in trials)
    assert all(0.0 <= t["reward"] <= 1.0 for t in trials)
