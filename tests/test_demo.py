"""The end-to-end demo with a tiny budget, and its pieces: cell drawings, the generated shapes set."""
import dataclasses
import json
import math
import os
import subprocess
import sys

import pytest
from PIL import Image

from nasnet_det import genotypes
from nasnet_det.errors import UserError
pytest.importorskip("detectron2")

from nasnet_det.detection.shapes import CLASSES, generate  # noqa: E402

TOOLS = os.path.join(os.path.dirname(__file__), "..", "tools")


def _png(path):
    with Image.open(path) as image:
        image.load()
        return image.size


def test_draw_genotype_tool(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(TOOLS, "draw_genotype.py"), "pnasnet_5",
                           "--out", str(tmp_path / "p.png"), "--engine", "matplotlib"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for cell in ("normal", "reduction"):
        width, height = _png(tmp_path / f"p_{cell}.png")
        assert width > 400 and height > 200
        with Image.open(tmp_path / f"p_{cell}.png") as image:  # drawn boxes in several colours, not a blank page
            colours = image.convert("RGB").getcolors(1 << 20)
        assert len(colours) > 20
    bad = subprocess.run([sys.executable, os.path.join(TOOLS, "draw_genotype.py"), "nope", "--out", str(tmp_path / "x.png")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown genotype 'nope'" in bad.stderr


def test_cell_diagram_has_every_op_edge_and_output():
    from nasnet_det.viz import _dot_source

    cell = genotypes.NASNET_A.reduction
    source = _dot_source(cell, "nasnet_a reduction")
    edges = [line for line in source.splitlines() if "->" in line]
    # each block: two inputs -> op, two op -> combine; then each concatenated state -> output
    assert len(edges) == 4 * len(cell.blocks) + len(cell.output_states())
    for k, block in enumerate(cell.blocks):
        for side, (i, op) in enumerate(zip(block.inputs, block.ops)):
            assert f'op{k}_{side} [label="{op}"' in source
            assert f"s{i} -> op{k}_{side};" in source and f"op{k}_{side} -> s{k + 2};" in source
    assert [f"s{i} -> out;" in source for i in cell.output_states()] == [True] * 4


def test_generated_shapes_register_through_the_coco_form(tmp_path):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from nasnet_det.detection.datasets import ensure_registered

    names = generate(str(tmp_path), train=6, val=3, size=64, seed=5)
    assert generate(str(tmp_path), train=6, val=3, size=64, seed=5) == names  # reused, not rewritten
    train = ensure_registered(names["train"])
    assert MetadataCatalog.get(train).thing_classes == list(CLASSES)
    dicts = DatasetCatalog.get(train)
    assert len(dicts) == 6 and all(1 <= len(d["annotations"]) <= 4 for d in dicts)
    for d in dicts:
        assert _png(d["file_name"]) == (64, 64)
        for a in d["annotations"]:
            x, y, w, h = a["bbox"]
            assert 0 <= x and 0 <= y and x + w <= 64 and y + h <= 64 and w >= 7


def test_demo_pipeline_with_a_tiny_budget(tmp_path):
    from nasnet_det.demo import DemoConfig, run_demo
    from nasnet_det.search.child import ChildConfig

    out = str(tmp_path / "demo")
    cfg = DemoConfig(out=out, search_budget=2, child=ChildConfig(epochs=1, max_train_batches=2, img_size=8, num_conv_filters=4),
                     pretrain_epochs=1, shapes_train=16, shapes_val=6, shapes_size=64, detection_iters=6,
                     detection_batch=2, raccoon=None, progress=False)
    result = run_demo(cfg)
    for name in ("cell_normal.png", "cell_reduction.png", "search_curve.png", "detections.png"):
        assert _png(os.path.join(out, name))[0] > 100, name
    genotype = genotypes.get(os.path.join(out, "genotype.json"))
    from nasnet_det.modeling import build_nasnet

    build_nasnet(genotype, num_cells=3, num_conv_filters=4, num_classes=3)
    with open(os.path.join(out, "metrics.json")) as f:
        assert {"top1", "top5", "ema_top1", "ema_top5"} <= set(json.load(f))
    with open(os.path.join(out, "detection_metrics.json")) as f:
        bbox = json.load(f)["bbox"]
    assert {"AP", "AP50", "AP75"} <= set(bbox)
    report = open(os.path.join(out, "report.md")).read()
    assert "cell_normal.png" in report and "AP50" in report
    # the searched cell's standing under the search's reward, among random cells of the space
    from nasnet_det.demo import percentile_among_random
    from nasnet_det.search.ranking import RankConfig, Scorer

    rank = json.load(open(os.path.join(out, "search_rank.json")))
    assert rank["method"] == "prior+gradnorm" and rank["cells"] == 100
    assert rank["score"] == pytest.approx(Scorer(RankConfig("prior+gradnorm", cfg.child))(genotype)["score"])
    again = percentile_among_random(genotype, "prior+gradnorm", cfg.child)
    assert again["percentile"] == rank["percentile"] and again["score"] == pytest.approx(rank["score"])
    assert f"beats {100 * rank['percentile']:.1f}% of 100 random cells" in report
    assert set(result["metrics"]["shapes"]["bbox"]) == set(bbox)
    # a 6-iteration detector may find nothing (COCOeval's NaN, written as null): what is determined is
    # that each value is a percentage or NaN, and that the JSON holds exactly what the run returned
    returned = result["metrics"]["shapes"]["bbox"]
    for k in ("AP", "AP50", "AP75"):
        assert (math.isnan(returned[k]) and bbox[k] is None) or (0 <= returned[k] <= 100 and bbox[k] == returned[k])

    # a second run into the folder without --resume deletes nothing: one line naming --resume
    trials = open(os.path.join(out, "search", "trials.jsonl")).read()
    with pytest.raises(UserError, match=r"already holds a demo run \(search, pretrain, .*\): --resume continues it"):
        run_demo(cfg)
    assert open(os.path.join(out, "search", "trials.jsonl")).read() == trials

    # an interrupted run continues: finished stages are kept, detection restarts from its checkpoint
    pretrain_ckpt = os.path.join(out, "pretrain", "checkpoint.pth")
    pretrained_at = os.path.getmtime(pretrain_ckpt)
    det_dir = os.path.join(out, "detection_shapes")
    early = os.path.join(det_dir, "model_0000001.pth")
    early_at = os.path.getmtime(early)
    os.remove(os.path.join(det_dir, "model_final.pth"))
    with open(os.path.join(det_dir, "last_checkpoint"), "w") as f:
        f.write("model_0000002.pth")
    resumed = run_demo(dataclasses.replace(cfg, resume=True))
    assert open(os.path.join(out, "search", "trials.jsonl")).read() == trials
    assert os.path.getmtime(pretrain_ckpt) == pretrained_at
    assert os.path.isfile(os.path.join(det_dir, "model_final.pth"))
    assert os.path.getmtime(early) == early_at  # continued after iteration 2, not restarted
    assert genotypes.get(os.path.join(out, "genotype.json")) == genotype
    assert resumed["pretrain"] == result["pretrain"]


def test_graphviz_layout_when_a_dot_program_is_installed(tmp_path):
    from nasnet_det.viz import dot_program, draw_cell

    if dot_program() is None:
        pytest.skip("no dot program (make install adds graphviz-pure)")
    path = draw_cell(genotypes.NASNET_A.normal, str(tmp_path / "n.png"), "nasnet_a normal", engine="graphviz")
    width, height = _png(path)
    assert width > 400 and height > 200
    with Image.open(path) as image:
        assert len(image.convert("RGB").getcolors(1 << 20)) > 20
