"""The one prepared benchmark command runs end to end on the CPU, so the GPU report cannot rot."""
import json
import os
import subprocess
import sys

import pytest

TOOL = os.path.join(os.path.dirname(__file__), "..", "tools", "benchmark.py")


@pytest.mark.slow  # a smoke run of NASNet-A Large and R50-FPN (70 s here): make test-all runs it
def test_benchmark_all_quick_on_the_cpu_writes_one_report(tmp_path):
    pytest.importorskip("detectron2")
    pytest.importorskip("pretrainedmodels")
    out = tmp_path / "bench"
    done = subprocess.run([sys.executable, TOOL, "all", "--device", "cpu", "--quick", "--out", str(out), "--workers", "2"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.load(open(out / "results-cpu.json"))
    sections = results["sections"]
    assert {"backbone train, fp32 NCHW", "backbone train, channels_last bf16", "backbone inference, eager", "detector",
            "pretraining step, NASNet-A Mobile 224", "search"} <= set(sections)
    detector = sections["detector"]["results"]
    assert set(detector) == {"train", "forward"}
    assert {"ours NASNet-A Large FPN", "ours NASNet-A Large, paper layout", "timm nasnetalarge adapter + FPN",
            "R50-FPN (detectron2)", "ours, activation checkpointing"} == set(detector["train"])
    assert all(r["seconds_per_step"] > 0 for mode in detector.values() for r in mode.values())
    assert all(r["children_per_s"] > 0 for r in sections["search"]["results"].values())
    table = open(out / "results-cpu.md").read()
    assert "quick: not measurements" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| section")]
    assert len(rows) == 2 * 2 + 2 + 5 * 2 + 2 + 3  # backbone train x2, inference, detector train+forward, pretrain, search


@pytest.mark.slow  # two supernets and three detectors trained (90 s here): make test-all runs it
def test_oneshot_benchmarks_quick_write_their_figures(tmp_path):
    out = tmp_path / "oneshot"
    done = subprocess.run([sys.executable, TOOL, "oneshot", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.load(open(out / "oneshot.json"))
    assert result["cells"] == 3 and result["scored"] == 4 and len(result["standalone"]) == len(result["inherited"]) == 3
    assert result["per_child_s_per_cell"] > 0 and result["oneshot_s_per_cell"] > 0
    assert result["cost_ratio"] == pytest.approx(result["per_child_s_per_cell"] / result["oneshot_s_per_cell"])
    assert os.path.getsize(out / "rank_fidelity.png") > 0
    assert "Kendall tau" in done.stdout and "equal time" in done.stdout

    pytest.importorskip("detectron2")
    out = tmp_path / "oneshot_detection"
    done = subprocess.run([sys.executable, TOOL, "oneshot-detection", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.load(open(out / "oneshot_detection.json"))
    assert set(result["ap50"]) == {"detection reward", "classification reward", "NASNet-A"}
    assert all(len(v) == 1 and 0 <= v[0] <= 100 for v in result["ap50"].values())


def test_kernels_benchmark_quick_times_every_op_and_the_network(tmp_path):
    out = tmp_path / "kernels.json"
    done = subprocess.run([sys.executable, TOOL, "kernels", "--quick", "--model-iters", "1", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.load(open(out))
    names = list(results)
    assert any(n.startswith("depthwise") for n in names) and any(n.startswith("pointwise") for n in names)
    assert any(n.startswith("avg pool") for n in names) and names[-1].startswith("NASNet-A Large train step")
    assert all(r["pytorch_s"] > 0 and r["ours_s"] > 0 for r in results.values())
    assert "speed-up" in done.stdout
