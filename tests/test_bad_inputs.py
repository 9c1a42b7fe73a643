"""Bad input, in every tool and in the API: one line that names the problem, a non-zero exit,
nothing lost. Each row is a case a user met; the message pattern is what they must read.

The tools run in-process through ``nasnet_det.cli.run``, exactly as their ``__main__`` does, so
the table stays fast; ``test_cli_errors_are_one_line_from_a_shell`` runs a few as real processes.
"""
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from nasnet_det import cli
from nasnet_det import genotypes
from nasnet_det.errors import (ConfigError, DataError, GenotypeError, InputError, SearchError,
                               UserError, one_line)
from nasnet_det.modeling import build_nasnet

from conftest import TINY_DETECTOR

TOOLS = os.path.join(os.path.dirname(__file__), "..", "tools")
TINY_DET = TINY_DETECTOR + ["INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "64", "DATALOADER.NUM_WORKERS", "0"]


def _tool(name):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(TOOLS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool(capsys, name, argv):
    """(exit status, the last stderr line or the exit message) of ``tools/NAME.py ARGV``."""
    module = _tool(name)
    with pytest.raises(SystemExit) as exit:
        cli.run(module.main, [str(a) for a in argv])
    err = capsys.readouterr().err
    code = exit.value.code
    if isinstance(code, str):
        return 1, code
    lines = err.strip().splitlines()
    return code, lines[-1] if lines else ""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The bad (and good) files the cases read."""
    root = tmp_path_factory.mktemp("inputs")
    f = {"root": str(root)}

    def write(name, data, mode="w"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, mode) as out:
            out.write(data)
        return str(path)

    f["garbage"] = write("garbage.pth", "this is not a checkpoint\n")
    f["json"] = write("weights.json", json.dumps({"a": 1}))
    torch.save({"w": torch.randn(1000)}, root / "full.pth")
    f["truncated"] = write("truncated.pth", (root / "full.pth").read_bytes()[:1500], "wb")
    import torchvision

    f["resnet18"] = str(root / "resnet18.pth")
    torch.save(torchvision.models.resnet18().state_dict(), f["resnet18"])
    f["latin1"] = write("cell.json", "{\"name\": \"caf\xe9\"}".encode("latin-1"), "wb")
    f["concat7"] = write("concat7.json", json.dumps({"normal": {"blocks": [[0, 1, "identity", "identity"]], "concat": 7},
                                                      "reduction": [[0, 1, "identity", "identity"]]}))
    f["a_file"] = write("a_file.txt", "x")
    f["deep"] = write("deep.json", "[" * 100_000 + "]" * 100_000)
    wide = [{"inputs": [0, 1], "ops": ["identity", "identity"], "combine": "add"}]
    f["wide"] = write("wide.json", json.dumps({"normal": {"blocks": wide * 3000}, "reduction": {"blocks": wide * 5}}))
    f["empty_yaml"] = write("empty.yaml", "")
    f["ids"] = write("ids.txt", "1\n2\nthree\n")
    # a tiny COCO set, and broken copies of its annotations
    from PIL import Image

    (root / "img").mkdir()
    for i in (1, 2):
        Image.new("RGB", (64, 48), (i * 60, 90, 30)).save(root / "img" / f"{i}.jpg")
    coco = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 64, "height": 48} for i in (1, 2)],
            "annotations": [{"id": 10 + i, "image_id": i, "category_id": 1, "bbox": [4, 5, 30, 20], "area": 600,
                             "iscrowd": 0} for i in (1, 2)],
            "categories": [{"id": 1, "name": "thing"}]}
    f["coco"] = write("coco.json", json.dumps(coco))
    no_bbox = json.loads(json.dumps(coco))
    del no_bbox["annotations"][1]["bbox"]
    f["coco_no_bbox"] = write("coco_no_bbox.json", json.dumps(no_bbox))
    no_file = json.loads(json.dumps(coco))
    del no_file["images"][0]["file_name"]
    f["coco_no_file"] = write("coco_no_file.json", json.dumps(no_file))
    bad_cat = json.loads(json.dumps(coco))
    bad_cat["annotations"][0]["category_id"] = 9
    f["coco_bad_cat"] = write("coco_bad_cat.json", json.dumps(bad_cat))
    dup_ann = json.loads(json.dumps(coco))
    dup_ann["annotations"][1]["id"] = 11
    f["coco_dup_ann"] = write("coco_dup_ann.json", json.dumps(dup_ann))
    return f


def _nan_truth_cells(files):
    path = os.path.join(files["root"], "nan_cells.jsonl")
    with open(path, "w") as f:
        f.write('{"genotype": "nasnet_a", "acc": NaN}\n{"genotype": "darts_v2", "acc": 1.0}\n')
    return path


def _score_key_cells(files):
    path = os.path.join(files["root"], "score_cells.jsonl")
    with open(path, "w") as f:
        f.write('{"genotype": "nasnet_a"}\n{"genotype": "darts_v2", "score": 0.9}\n')
    return path


def _det(files, *opts):
    return TINY_DET + ["DATASETS.TRAIN", "()", "DATASETS.TEST", f"('coco:{files['root']}/img:{files['coco']}',)",
                       "OUTPUT_DIR", os.path.join(files["root"], "out")] + list(opts)


# (id, tool, argv from the files fixture, pattern the one-line message must match)
CLI_CASES = [
    # search
    ("search-backend-bogus", "search", lambda f: ["--backend", "bogus"], r"invalid choice: 'bogus'"),
    ("search-strategy-bogus", "search", lambda f: ["--strategy", "bogus"], r"invalid choice: 'bogus'"),
    ("search-budget-0", "search", lambda f: ["--budget", "0"], r"budget must be an integer of at least 1, got 0"),
    ("search-budget-text", "search", lambda f: ["--budget", "ten"], r"--budget: invalid int value: 'ten'"),
    ("search-workers-0", "search", lambda f: ["--workers", "0"], r"workers must be an integer of at least 1"),
    ("search-retries-negative", "search", lambda f: ["--retries", "-1"], r"retries must be an integer of at least 0"),
    ("search-num-blocks-0", "search", lambda f: ["--num-blocks", "0"], r"num_blocks must be"),
    ("search-child-img-size-0", "search", lambda f: ["--child-img-size", "0"], r"child img_size must be"),
    ("search-child-epochs-0", "search", lambda f: ["--child-epochs", "0"], r"child epochs must be"),
    ("search-child-batch-0", "search", lambda f: ["--child-batch-size", "0"], r"child batch_size must be"),
    ("search-child-lr-0", "search", lambda f: ["--child-lr", "0"], r"child lr .* must be positive"),
    ("search-resume-nothing", "search", lambda f: ["--resume", "--out", f["root"] + "/no_search"],
     r"nothing to resume: .*no_search holds no search"),
    ("search-out-is-a-file", "search", lambda f: ["--out", f["a_file"]], r"is a file, not a folder"),
    ("search-strategy-option-unknown", "search", lambda f: ["--strategy-option", "foo=1", "--out", f["root"] + "/s1"],
     r"strategy 'ppo' has no option among \['foo'\]; its options: hidden, lr"),
    ("search-strategy-option-form", "search", lambda f: ["--strategy-option", "lr"], r"expected KEY=VALUE"),
    ("search-tpe-option-unknown", "search", lambda f: ["--strategy", "tpe", "--strategy-option", "gamma=1", "--out",
                                                       f["root"] + "/s4"],
     r"strategy 'tpe' has no option among \['gamma'\]; its options: n_startup_trials, tries, multivariate, n_ei_candidates"),
    ("search-promote-unknown-key", "search", lambda f: ["--promote", "foo=1", "--out", f["root"] + "/p1"],
     r"--promote 'foo=1': expected KEY=VALUE\[,KEY=VALUE...\] with KEY one of method, dataset"),
    ("search-promote-bad-value", "search", lambda f: ["--promote", "epochs=0", "--out", f["root"] + "/p2"],
     r"--promote 'epochs=0': child epochs must be an integer of at least 1"),
    ("search-promote-keep-0", "search", lambda f: ["--promote", "epochs=4", "--promote-keep", "0"],
     r"promote_keep must be in \(0, 1\]"),
    ("search-strategy-option-range", "search", lambda f: ["--strategy", "evolution", "--strategy-option",
                                                          "sample_size=0", "--out", f["root"] + "/s2"], r"sample_size"),
    ("search-op-unknown", "search", lambda f: ["--ops", "sep_conv_3x3", "conv_9x9"], r"'conv_9x9'"),
    ("search-dataset-unknown", "search", lambda f: ["--dataset", "mnist", "--out", f["root"] + "/s3"],
     r"unknown dataset 'mnist'"),
    ("search-dataset-missing", "search", lambda f: ["--dataset", "cifar10:/no/such", "--out", f["root"] + "/s4"],
     r"cifar10 folder not found: /no/such"),
    ("search-evaluator-unknown", "search", lambda f: ["--evaluator", "no_module:fn", "--out", f["root"] + "/s5"],
     r"evaluator 'no_module:fn'"),
    ("search-method-bogus", "search", lambda f: ["--method", "bogus"], r"invalid choice: 'bogus'"),
    ("search-oneshot-concat", "search", lambda f: ["--method", "oneshot", "--combines", "add", "concat"],
     r"--method oneshot supports add combines only"),
    ("search-detection-per-child", "search", lambda f: ["--task", "detection"], r"--task detection needs --method oneshot"),
    ("search-detection-digits", "search", lambda f: ["--method", "oneshot", "--task", "detection", "--dataset", "digits"],
     r"--task detection takes --dataset shapes, voc:ROOT or coco:DIR:JSON, got 'digits'"),
    ("search-detection-tiny-images", "search", lambda f: ["--method", "oneshot", "--task", "detection",
                                                          "--child-img-size", "16"], r"--child-img-size of at least 32"),
    ("search-oneshot-epochs-negative", "search", lambda f: ["--method", "oneshot", "--oneshot-epochs", "-1"],
     r"oneshot epochs must be an integer of at least 0"),
    ("search-oneshot-metric", "search", lambda f: ["--task", "detection", "--method", "oneshot", "--oneshot-metric", "mAP"],
     r"oneshot metric must be one of AP50, AP"),
    ("search-oneshot-metric-classification", "search", lambda f: ["--oneshot-metric", "AP"], r"classification has one reward"),
    # pretrain
    ("pretrain-epochs-0", "pretrain", lambda f: ["--epochs", "0"], r"epochs must be an integer of at least 1, got 0"),
    ("pretrain-ema-decay-2", "pretrain", lambda f: ["--ema-decay", "2"], r"ema_decay must be below 1 .*got 2.0"),
    ("pretrain-momentum-5", "pretrain", lambda f: ["--momentum", "5"], r"momentum must be below 1 .*got 5.0"),
    ("pretrain-aux-weight-nan", "pretrain", lambda f: ["--aux-weight", "nan"], r"aux_weight must be a number of at least 0, got nan"),
    ("pretrain-img-size-0", "pretrain", lambda f: ["--img-size", "0"], r"img_size must be an integer of at least 3"),
    ("pretrain-img-size-2", "pretrain", lambda f: ["--img-size", "2"], r"img_size .* at least 3, got 2"),
    ("pretrain-batch-0", "pretrain", lambda f: ["--batch-size", "0"], r"batch_size must be"),
    ("pretrain-workers-negative", "pretrain", lambda f: ["--workers", "-1"], r"workers must be .* at least 0"),
    ("pretrain-lr-0", "pretrain", lambda f: ["--lr", "0"], r"lr must be a positive number"),
    ("pretrain-stem-bogus", "pretrain", lambda f: ["--stem", "resnet"], r"invalid choice: 'resnet'"),
    ("pretrain-genotype-unknown", "pretrain", lambda f: ["--genotype", "nasnet_z", "--out", f["root"] + "/p1"],
     r"unknown genotype 'nasnet_z'"),
    ("pretrain-genotype-latin1", "pretrain", lambda f: ["--genotype", f["latin1"], "--out", f["root"] + "/p2"],
     r"cell.json: not a UTF-8 text file"),
    ("pretrain-arch-form", "pretrain", lambda f: ["--arch", "large", "--out", f["root"] + "/p3"], r"arch must look like 'N@F'"),
    ("pretrain-arch-width", "pretrain", lambda f: ["--arch", "1@100", "--out", f["root"] + "/p4"],
     r"width 100 is not a multiple of 24"),
    ("pretrain-arch-too-narrow", "pretrain", lambda f: ["--arch", "1@24", "--out", f["root"] + "/p5"],
     r"num_conv_filters 1 leaves cell_stem_0 with no filters .* use at least 4"),
    ("pretrain-data-unknown", "pretrain", lambda f: ["--data", "imagenet", "--out", f["root"] + "/p6"],
     r"unknown dataset 'imagenet'"),
    ("pretrain-data-missing", "pretrain", lambda f: ["--data", "imagefolder:/no/such", "--out", f["root"] + "/p7"],
     r"missing the train/ folder"),
    ("pretrain-batch-too-large", "pretrain", lambda f: ["--arch", "1@96", "--batch-size", "100000", "--out",
                                                        f["root"] + "/p8"], r"exceeds the 1437 training images"),
    ("pretrain-out-is-a-file", "pretrain", lambda f: ["--arch", "1@96", "--out", f["a_file"]],
     r"cannot run this pretraining in .*a_file.txt: it \(or a folder above it\) is a file, not a folder"),
    # train_net
    ("train-no-config", "train_net", lambda f: [], r"no config: use --config NAME"),
    ("train-out-is-a-file", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml"] + _det(f) + ["OUTPUT_DIR", f["a_file"]],
     r"cannot run this detection run in .*a_file.txt: it \(or a folder above it\) is a file, not a folder"),
    ("train-empty-config", "train_net", lambda f: ["--config-file", f["empty_yaml"]], r"empty.yaml: an empty config"),
    ("train-option-after-overrides", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "MODEL.DEVICE", "cpu",
                                                             "--eval-only"],
     r"--eval-only after the KEY VALUE overrides is read as one of them: put the options first"),
    ("train-device-cuda-absent", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "MODEL.DEVICE", "cuda"]
     if not torch.cuda.is_available() else ["--config", "Base-NASNet-FPN.yaml", "MODEL.DEVICE", "cuda:99"],
     r"MODEL.DEVICE cuda(:99)?: no CUDA device|invalid device ordinal"),
    ("train-machines-never-join", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "--num-machines", "2",
                                                          "--dist-url", "tcp://127.0.0.1:0", "--dist-timeout", "0.05",
                                                          "--eval-only"] + _det(f, "MODEL.WEIGHTS", f["a_file"]),
     r"--num-machines 2: the other machines did not join at tcp://127.0.0.1:0 within 0.05 min"),
    ("train-config-unknown", "train_net", lambda f: ["--config", "nasnet_z.yaml"], r"config file not found: 'nasnet_z.yaml'"),
    ("train-key-unknown", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "MODEL.NASNET.NOPE", "1"],
     r"MODEL.NASNET.NOPE"),
    ("train-num-gpus-text", "train_net", lambda f: ["--num-gpus", "two"], r"invalid int value: 'two'"),
    ("train-frozen-bn-from-scratch", "train_net", lambda f: ["--config", "nasnet_a_mobile_fpn_frcnn.yaml",
                                                             "MODEL.DEVICE", "cpu", "DATASETS.TRAIN", "()",
                                                             "OUTPUT_DIR", f["root"] + "/t1"],
     r"MODEL.NASNET.NORM 'FrozenBN' and MODEL.BACKBONE.FREEZE_AT 2 with MODEL.WEIGHTS '' .* diverge: .*_scratch.yaml"),
    ("train-old-freeze-key", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "MODEL.NASNET.FREEZE_AT", "2"],
     r"MODEL.NASNET.FREEZE_AT 2 is no longer read: set Detectron2's own key instead, MODEL.BACKBONE.FREEZE_AT 2"),
    ("train-eval-without-weights", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "--eval-only"] + _det(f),
     r"--eval-only needs weights"),
    ("train-weights-missing", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "--eval-only"]
     + _det(f, "MODEL.WEIGHTS", "/no/model.pth"), r"checkpoint not found: /no/model.pth"),
    ("train-weights-garbage", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "--eval-only"]
     + _det(f, "MODEL.WEIGHTS", f["garbage"]), r"garbage.pth is not a readable checkpoint \(\w+: .*expected a .pth"),
    ("train-weights-truncated", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "--eval-only"]
     + _det(f, "MODEL.WEIGHTS", f["truncated"]), r"truncated.pth is not a readable checkpoint"),
    ("train-weights-of-resnet18", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "--eval-only"]
     + _det(f, "MODEL.WEIGHTS", f["resnet18"]), r"resnet18.pth fills \d+ of the NASNet's \d+ tensors: it holds another model"),
    ("train-dataset-missing", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml"] + TINY_DET
     + ["DATASETS.TRAIN", "('voc:/no/voc',)"], r"dataset folder not found: /no/voc"),
    ("train-coco-no-bbox", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml"] + TINY_DET
     + ["DATASETS.TRAIN", f"('coco:{f['root']}/img:{f['coco_no_bbox']}',)"],
     r"coco_no_bbox.json: annotations\[1\] \(id 12\): 'bbox' must be \[x, y, width, height\], got None"),
    ("train-coco-duplicate-annotation-ids", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml"] + TINY_DET
     + ["DATASETS.TRAIN", f"('coco:{f['root']}/img:{f['coco_dup_ann']}',)"],
     r"coco_dup_ann.json: annotations\[1\] \(id 11\) has the id of annotations\[0\]: give each annotation its own id"),
    ("train-coco-no-file-name", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml"] + TINY_DET
     + ["DATASETS.TRAIN", f"('coco:{f['root']}/img:{f['coco_no_file']}',)"], r"images\[0\] \(id 1\): missing 'file_name'"),
    ("train-coco-unknown-category", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml"] + TINY_DET
     + ["DATASETS.TRAIN", f"('coco:{f['root']}/img:{f['coco_bad_cat']}',)"], r"category_id 9 is not among the categories"),
    ("train-id-list-bad-line", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml"] + TINY_DET
     + ["DATASETS.TRAIN", f"('coco:{f['root']}/img:{f['coco']}@{f['ids']}',)"], r"ids.txt, line 3: 'three' is not an image id"),
    ("train-genotype-unknown", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "--eval-only"]
     + _det(f, "MODEL.WEIGHTS", f["resnet18"], "MODEL.NASNET.GENOTYPE", "nasnet_z"), r"unknown genotype 'nasnet_z'"),
    ("train-arch-bad", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "--eval-only"]
     + _det(f, "MODEL.WEIGHTS", f["resnet18"], "MODEL.NASNET.ARCH", "6@100"), r"width 100 is not a multiple"),
    ("train-norm-bogus", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "--eval-only"]
     + _det(f, "MODEL.WEIGHTS", f["resnet18"], "MODEL.NASNET.NORM", "GN"), r"norm must be BN, FrozenBN or SyncBN, got 'GN'"),
    ("train-out-features-bogus", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "--eval-only"]
     + _det(f, "MODEL.WEIGHTS", f["resnet18"], "MODEL.NASNET.OUT_FEATURES", "['stride64']"), r"OUT_FEATURES: unknown"),
    # convert_pretrained
    ("convert-json-source", "convert_pretrained", lambda f: [f["json"], f["root"] + "/c.pth"],
     r"weights.json is not a readable PyTorch weights file"),
    ("convert-garbage-source", "convert_pretrained", lambda f: [f["garbage"], f["root"] + "/c.pth"],
     r"garbage.pth is not a readable PyTorch weights file"),
    ("convert-missing-source", "convert_pretrained", lambda f: ["/no/nasnet.pth", f["root"] + "/c.pth"],
     r"checkpoint not found: /no/nasnet.pth"),
    ("convert-other-network", "convert_pretrained", lambda f: [f["resnet18"], f["root"] + "/c.pth"],
     r"cannot tell the network of .*resnet18.pth .* --model"),
    ("convert-other-network-named", "convert_pretrained", lambda f: [f["resnet18"], f["root"] + "/c.pth", "--model",
                                                                     "nasnet_a_mobile"], r"checkpoint has 0 normal cells"),
    ("convert-model-bogus", "convert_pretrained", lambda f: [f["resnet18"], "x.pth", "--model", "resnet"],
     r"invalid choice: 'resnet'"),
    # draw_genotype
    ("draw-genotype-unknown", "draw_genotype", lambda f: ["nope", "--out", f["root"] + "/d.png"], r"unknown genotype 'nope'"),
    ("draw-concat-not-a-list", "draw_genotype", lambda f: [f["concat7"], "--out", f["root"] + "/d.png"],
     r"'concat' must be a list of state indices, got 7"),
    ("draw-format", "draw_genotype", lambda f: ["nasnet_a", "--out", f["root"] + "/d.jpg", "--engine", "matplotlib"],
     r"written as .png, .svg or .pdf"),
    # demo
    ("demo-budget-0", "demo", lambda f: ["--search-budget", "0", "--out", f["root"] + "/demo"],
     r"demo search_budget must be an integer of at least 1, got 0"),
    ("demo-iters-0", "demo", lambda f: ["--detection-iters", "0", "--out", f["root"] + "/demo"], r"detection_iters"),
    ("demo-workers-text", "demo", lambda f: ["--search-workers", "two"], r"invalid int value: 'two'"),
    # the cases a hostile or careless user's audit found ending badly
    ("rank-truth-nan", "rank", lambda f: [_nan_truth_cells(f), "--method", "prior", "--truth", "acc",
                                          "--out", f["root"] + "/nan_scores.jsonl"],
     r"nan_cells.jsonl line 1: no finite number under the truth key 'acc' \(got nan\)"),
    ("train-net-machine-rank-5-of-2", "train_net", lambda f: ["--num-machines", "2", "--machine-rank", "5"],
     r"--machine-rank 5 of --num-machines 2: the rank must be 0 to 1"),
    ("fit-budget-table-missing", "fit_budget", lambda f: ["--genotype", "nasnet_a", "--target", "30", "--table",
                                                          f["root"] + "/phone.jsonl"],
     r"latency table not found: .*phone.jsonl \(time one with nasnet-det latency-table"),
    ("pretrain-resume-nothing", "pretrain", lambda f: ["--resume", "--out", f["root"] + "/no_pretraining"],
     r"nothing to resume: .*no_pretraining holds no pretraining run"),
    ("rank-proxy-batch-0", "rank", lambda f: [_nan_truth_cells(f), "--proxy-batch", "0", "--out", f["root"] + "/pb.jsonl"],
     r"--proxy-batch must be an integer of at least 2 images, got 0"),
    ("rank-out-is-the-input", "rank", lambda f: [_nan_truth_cells(f), "--out", _nan_truth_cells(f)],
     r"--out .*nan_cells.jsonl is the cells file itself"),
    ("rank-out-is-a-folder", "rank", lambda f: [_nan_truth_cells(f), "--method", "prior", "--out", f["root"]],
     r"--out .* is a folder: give a file path such as .*scores.jsonl \(nothing was scored\)"),
    ("rank-input-has-score", "rank", lambda f: [_score_key_cells(f), "--method", "prior", "--out", f["root"] + "/sk.jsonl"],
     r"score_cells.jsonl: cell 2 has a key named 'score', where rank writes its score: rename that key"),
    ("latency-table-threads-0", "latency_table", lambda f: ["--threads", "0", "--out", f["root"] + "/lt.jsonl"],
     r"--threads 0: give at least 1"),
    ("search-failure-reward-nan", "search", lambda f: ["--failure-reward", "nan", "--out", f["root"] + "/fr"],
     r"failure_reward must be a finite number, got nan"),
    ("predict-input-missing", "predict", lambda f: ["--config", "demo_fpn_cpu.yaml", "--input", f["root"] + "/nope.jpg",
                                                    "--output", f["root"] + "/pred"],
     r"no image to predict on: .*nope.jpg: no such image, folder or matching file"),
    ("predict-output-is-a-file", "predict", lambda f: ["--config", "demo_fpn_cpu.yaml", "--input", f["root"] + "/img/1.jpg",
                                                       "--output", f["a_file"]],
     r"--output .* is a file: give a folder"),
    ("draw-genotype-deep-json", "draw_genotype", lambda f: [f["deep"], "--out", f["root"] + "/deep.png"],
     r"deep.json: JSON nested too deeply to be a genotype"),
    ("draw-genotype-3000-blocks", "draw_genotype", lambda f: [f["wide"], "--out", f["root"] + "/wide.png"],
     r"wide.json: the normal cell has 3000 blocks; a drawing stays readable .* up to 64"),
    ("pretrain-arch-n-99999", "pretrain", lambda f: ["--arch", "99999@96", "--out", f["root"] + "/big"],
     r"arch 99999@96: N = 99999 stacks 299999 cells, which would take hours to build .* give N <= 100"),
    ("pretrain-arch-out-of-memory", "pretrain", lambda f: ["--arch", "6@403200", "--data", "digits", "--out",
                                                           f["root"] + "/wide_net"],
     r"arch 6@403200: about [\d,]+M parameters, [\d,.]+ GiB for weights, gradients, optimizer and EMA .* give a smaller N@F"),
    ("train-net-coco-not-on-disk", "train_net", lambda f: ["--config", "Base-NASNet-FPN.yaml", "MODEL.DEVICE", "cpu",
                                                           "OUTPUT_DIR", f["root"] + "/nococo"],
     r"dataset 'coco_2017_train' reads .*instances_train2017.json, which is not on disk: .*DETECTRON2_DATASETS"),
    ("check-dataset-coco-not-on-disk", "check_dataset", lambda f: ["coco_2017_val", "--no-progress"],
     r"dataset 'coco_2017_val' reads .*instances_val2017.json, which is not on disk"),
    ("train-max-iter-negative", "train_net", lambda f: ["--config", "demo_fpn_cpu.yaml", "SOLVER.MAX_ITER", "-5"],
     r"SOLVER.MAX_ITER must be an integer of at least 1, got -5"),
    ("demo-out-is-a-file", "demo", lambda f: ["--out", f["a_file"]], r"--out .*a_file.txt is a file: give a folder"),
    ("export-sample-image-missing", "export", lambda f: ["--config", "demo_fpn_cpu.yaml", "--format", "torchscript",
                                                         "--output", f["root"] + "/exp", "--sample-image", f["root"] + "/no.jpg"],
     r"--sample-image .*no.jpg: cannot read it as an image"),
    ("export-sample-image-corrupt", "export", lambda f: ["--config", "demo_fpn_cpu.yaml", "--format", "torchscript",
                                                         "--output", f["root"] + "/exp", "--sample-image", f["a_file"]],
     r"--sample-image .*a_file.txt: cannot read it as an image"),
    ("export-output-is-a-file", "export", lambda f: ["--config", "demo_fpn_cpu.yaml", "--format", "onnx", "--output",
                                                     f["a_file"]], r"--output .* is a file: give a folder"),
    ("export-no-weights", "export", lambda f: ["--config", "demo_fpn_cpu.yaml", "--format", "torchscript", "--output",
                                               f["root"] + "/exp2", "MODEL.WEIGHTS", ""],
     r"no weights to export: give MODEL.WEIGHTS"),
    ("demo-resume-nothing", "demo", lambda f: ["--resume", "--out", f["root"] + "/no_demo"],
     r"nothing to resume: .*no_demo holds no demo run"),
    # benchmark / model_table
    ("benchmark-unknown", "benchmark", lambda f: ["everything"], r"invalid choice: 'everything'"),
    ("benchmark-strategies-budget", "benchmark", lambda f: ["strategies", "--lamcts", f["a_file"], "--budget", "tpe=5"],
     r"--budget 'tpe=5': expected STRATEGY=N with a known strategy and N >= 10"),
    ("model-table-extra", "model_table", lambda f: ["--fast"], r"unrecognized arguments: --fast"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_is_one_line(case, files, capsys, monkeypatch):
    pytest.importorskip("detectron2")
    monkeypatch.chdir(files["root"])  # default --out folders land here, never in the checkout
    _, tool, argv, pattern = case
    status, message = run_tool(capsys, tool, argv(files))
    assert status != 0
    assert message.startswith("error: ") and "\n" not in message and "Traceback" not in message, message
    assert re.search(pattern, message), f"{message!r} !~ {pattern!r}"


def _net(**kw):
    return build_nasnet("nasnet_a", **{"num_cells": 3, "num_conv_filters": 8, "num_classes": 3, **kw})


def _paper_detector(*opts):
    pytest.importorskip("detectron2")
    from detectron2.modeling import build_model

    from nasnet_det.detection.config import get_config

    return build_model(get_config("Base-NASNet-FRCNN.yaml", TINY_DET + list(opts), register_datasets=False))


# (id, call, expected exception, pattern)
API_CASES = [
    ("build-int-genotype", lambda t: build_nasnet(123), GenotypeError, r"published name, a .json path, a dict"),
    # latency-table --arch 1@96 used to end in a RuntimeError traceback at the first forward
    ("build-factorized-reduction-to-1-channel", lambda t: __import__("nasnet_det.modeling.ops", fromlist=["x"])
     .FactorizedReduction(96, 1), ConfigError, r"factorized reduction to 1 channel\(s\) .* use more filters"),
    ("build-num-cells-text", lambda t: _net(num_cells="6"), ConfigError, r"num_cells must be int, got '6'"),
    ("build-num-classes-text", lambda t: _net(num_classes="10"), ConfigError, r"num_classes must be int, got '10'"),
    ("build-filters-float", lambda t: _net(num_conv_filters=4.5), ConfigError, r"num_conv_filters must be int, got 4.5"),
    ("build-bool-for-int", lambda t: _net(num_classes=True), ConfigError, r"num_classes must be int, got True"),
    ("build-stem-bogus", lambda t: _net(stem="resnet"), ConfigError, r"stem must be one of"),
    ("build-keep-prob", lambda t: _net(drop_path_keep_prob=0.0), ConfigError, r"drop_path_keep_prob must be in \(0, 1\]"),
    ("build-arch-imagenet-too-narrow", lambda t: build_nasnet("nasnet_a", arch="1@24"), ConfigError, r"use at least 4"),
    ("build-arch-form", lambda t: build_nasnet("nasnet_a", arch="6x4032"), ConfigError, r"'N@F'"),
    ("build-reductions-crowd-cells", lambda t: _net(num_cells=1), ConfigError,
     r"num_reduction_layers 2 needs more cells than num_cells 1: two reductions would fall before the same cell"),
    ("timm-drop-rate-range", lambda t: (__import__("nasnet_det.modeling.timm_models"), __import__("timm").create_model(
        "nasnet_a_mobile", drop_rate=1.5)), ConfigError, r"drop_rate must be a number in \[0, 1\), got 1.5 \(timm's argument"),
    ("timm-global-pool-bogus", lambda t: _net(global_pool="median"), ConfigError, r"global_pool must be one of"),
    ("detector-paper-layout-stride-taps", lambda t: _paper_detector("MODEL.NASNET.OUT_FEATURES", "['stride4']"),
     ConfigError, r"the paper layout's second stage \(NASNetROIHeads\) reads 'pair16'"),
    ("forward-1x1", lambda t: _net().eval()(torch.randn(1, 3, 1, 1)), InputError, r"1x1 px is too small: .* at least 3x3"),
    ("forward-2x2", lambda t: _net().eval()(torch.randn(1, 3, 2, 2)), InputError, r"2x2 px is too small"),
    ("forward-grayscale", lambda t: _net().eval()(torch.randn(1, 1, 32, 32)), InputError,
     r"expects images of shape \(N, 3, H, W\), got \(1, 1, 32, 32\): convert grayscale"),
    ("forward-no-batch", lambda t: _net().eval()(torch.randn(3, 32, 32)), InputError, r"got \(3, 32, 32\)"),
    ("darts-not-pairs", lambda t: genotypes.from_darts(["sep_conv_3x3", "skip_connect"], [2], [("max_pool_3x3", 0)] * 2, [2]),
     GenotypeError, r"entry 0: expected an \(op name, input index\) pair, got 'sep_conv_3x3'"),
    ("darts-concat-none", lambda t: genotypes.from_darts([("sep_conv_3x3", 0)] * 2, None, [("max_pool_3x3", 0)] * 2, [2]),
     GenotypeError, r"the concat must be a list of state indices, got None"),
    ("darts-zero-op", lambda t: genotypes.from_darts([("none", 0), ("sep_conv_3x3", 1)], [2], [("max_pool_3x3", 0)] * 2, [2]),
     GenotypeError, r"DARTS' 'none' is the zero op"),
    ("genotype-concat-int", lambda t: genotypes.Genotype.from_dict({"normal": {"blocks": [[0, 1, "identity", "identity"]], "concat": 7},
                                                           "reduction": [[0, 1, "identity", "identity"]]}),
     GenotypeError, r"'concat' must be a list"),
    ("genotype-not-utf8", lambda t: genotypes.get(str(_write(t, "g.json", b"\xff\xfe{}"))), GenotypeError, r"not a UTF-8 text file"),
    ("genotype-dict", lambda t: genotypes.get({"normal": [[0, 1, "identity", "bogus_op"]], "reduction": [[0, 1, "identity", "identity"]]}),
     GenotypeError, r"unknown op 'bogus_op'"),
    ("search-config-backend", lambda t: __import__("nasnet_det.search.runner", fromlist=["x"]).SearchConfig(backend="bogus"),
     SearchError, r"unknown backend 'bogus'; use one of local, ray"),
    ("ray-address-nothing-there", lambda t: __import__("nasnet_det.search.backends", fromlist=["x"]).build_backend(
        "ray", 1, "127.0.0.1:1"), SearchError, r"--ray-address 127.0.0.1:1: nothing answers there \(connection refused "
     r"within 5 s\); start the cluster with ray start --head --port 1"),
    ("ray-address-malformed", lambda t: __import__("nasnet_det.search.backends", fromlist=["x"]).build_backend(
        "ray", 1, "headnode"), SearchError, r"--ray-address 'headnode': give HOST:PORT"),
    ("child-config-img-size", lambda t: __import__("nasnet_det.search.child", fromlist=["x"]).ChildConfig(img_size=0),
     SearchError, r"child img_size must be"),
    ("pretrain-config-epochs", lambda t: __import__("nasnet_det.pretrain", fromlist=["x"]).PretrainConfig(epochs=0),
     ConfigError, r"epochs must be"),
    ("data-img-size-0", lambda t: __import__("nasnet_det.data", fromlist=["x"]).build("digits", 0), DataError,
     r"image size must be a positive number of pixels, got 0"),
    ("draw-engine-unknown", lambda t: __import__("nasnet_det.viz", fromlist=["x"]).draw_cell(genotypes.NASNET_A.normal, str(t / "c.png"),
                                                                                             engine="tikz"),
     UserError, r"unknown drawing engine 'tikz'"),
]


def _write(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_bad_input_raises_a_user_error(case, tmp_path):
    _, call, error, pattern = case
    with pytest.raises(error, match=pattern) as info:
        call(tmp_path)
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)


def test_one_base_error_class_in_a_module_that_imports_nothing_of_the_package():
    import nasnet_det.errors as errors

    source = open(errors.__file__).read()
    assert "import" not in source.replace("imports nothing", "")
    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert len(classes) >= 8 and all(issubclass(c, errors.UserError) for c in classes)


def test_an_error_from_a_dataloader_worker_is_shown_as_its_own_line():
    wrapped = DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                        '  File "x.py", line 1, in f\nnasnet_det.errors.DataError: cannot read image a.jpg')
    assert one_line(wrapped) == "cannot read image a.jpg"


def test_a_detectron2_command_says_one_line_without_torchs_deprecation_notes(tmp_path):
    # no PYTHONWARNINGS here: the command itself silences the notes Detectron2's import makes torch print
    done = subprocess.run([sys.executable, os.path.join(TOOLS, "train_net.py"), "--config-file", "nope.yaml"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("error: config file not found: 'nope.yaml'") and done.stderr.count("\n") == 1, done.stderr


def test_cli_errors_are_one_line_from_a_shell(tmp_path):
    """The real entry points: stderr is exactly one line, the exit status non-zero."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for argv in (["search.py", "--backend", "bogus"], ["search.py", "--budget", "0"],
                 ["pretrain.py", "--epochs", "0"], ["draw_genotype.py", "nope", "--out", str(tmp_path / "x.png")]):
        done = subprocess.run([sys.executable, os.path.join(TOOLS, argv[0])] + argv[1:], capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=120)
        assert done.returncode != 0, argv
        assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error: "), (argv, done.stderr)


# ------------------------------------------------------------------------------------------------
# Silent wrong results that are now loud, or right

def test_eval_only_with_a_checkpoint_of_another_class_count(files, capsys, tmp_path):
    pytest.importorskip("detectron2")
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from nasnet_det.detection.config import get_config

    cfg = get_config("Base-NASNet-FPN.yaml", TINY_DET + ["MODEL.ROI_HEADS.NUM_CLASSES", "3"], register_datasets=False)
    DetectionCheckpointer(build_model(cfg), str(tmp_path)).save("three_classes")
    status, message = run_tool(capsys, "train_net", ["--config", "Base-NASNet-FPN.yaml", "--eval-only"] + _det(
        files, "MODEL.WEIGHTS", str(tmp_path / "three_classes.pth"), "MODEL.ROI_HEADS.NUM_CLASSES", "80"))
    assert status != 0 and message.startswith("error: ")
    assert "roi_heads.box_predictor.cls_score.weight (4, 64) in the file vs (81, 64) in the model" in message
    assert "another number of classes" in message


def test_eval_results_are_valid_json_when_ap_is_nan(tmp_path):
    pytest.importorskip("detectron2")
    from detectron2.config import get_cfg

    from nasnet_det.detection.evaluation import write_eval_results

    cfg = get_cfg()
    cfg.OUTPUT_DIR, cfg.DATASETS.TEST = str(tmp_path), ("val",)
    path = write_eval_results(cfg, {"bbox": {"AP": float("nan"), "AP50": 12.5}})
    text = open(path).read()
    assert "NaN" not in text and json.loads(text) == {"val": {"bbox": {"AP": None, "AP50": 12.5}}}


def _voc(root, box, size=(64, 48), image=True):
    from PIL import Image

    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "JPEGImages").mkdir(exist_ok=True)
    if image:
        Image.new("RGB", size, (90, 120, 30)).save(root / "JPEGImages" / "a.jpg")
    x1, y1, x2, y2 = box
    (root / "Annotations" / "a.xml").write_text(
        f"<annotation><filename>a.jpg</filename><size><width>{size[0]}</width><height>{size[1]}</height></size>"
        f"<object><name>thing</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax>"
        "</bndbox></object><object><name>thing</name><bndbox><xmin>30</xmin><ymin>30</ymin><xmax>20</xmax>"
        "<ymax>40</ymax></bndbox></object></annotation>")


def test_check_dataset_reports_what_training_would_get_wrong_and_coco_ids_must_be_unique(tmp_path):
    pytest.importorskip("detectron2")
    import json

    import numpy as np
    from PIL import Image

    from nasnet_det.detection.datasets import check_dataset, ensure_registered
    from nasnet_det.errors import DatasetError

    (tmp_path / "img").mkdir()
    Image.new("RGB", (32, 32)).save(tmp_path / "img" / "a.png")
    Image.fromarray(np.full((32, 32), 4000, dtype=np.uint16)).save(tmp_path / "img" / "deep.png")  # 16-bit

    def coco(name, images, annotations, categories=({"id": 1, "name": "thing"},)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": list(categories)}))
        return f"coco:{tmp_path / 'img'}:{path}"

    image = {"id": 1, "file_name": "a.png", "width": 32, "height": 32}
    box = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 2, 10, 10], "area": 100, "iscrowd": 0}
    with pytest.raises(DatasetError, match=r"images\[1\] \(deep.png\) has the id 1 of images\[0\]"):
        ensure_registered(coco("dup_images", [image, {**image, "file_name": "deep.png"}], [box]))
    with pytest.raises(DatasetError, match=r"categories\[0\] and categories\[1\] share the id 1"):
        ensure_registered(coco("dup_categories", [image], [box], [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]))
    problems = check_dataset(coco("deep", [{**image, "file_name": "deep.png"}], [box]), progress=False)["problems"]
    assert any("deep.png (image_id 1): a I;16 image (16-bit or float); convert it to 8-bit" in p or
               "deep.png (image_id 1): a I image" in p for p in problems), problems
    problems = check_dataset(coco("crowd", [image], [{**box, "iscrowd": 1}]), progress=False)["problems"]
    assert problems == [f"{coco('crowd', [image], [{**box, 'iscrowd': 1}])} has 1 boxes and every one is crowd / "
                        "difficult: a detector has nothing to learn from"]
    problems = check_dataset(coco("empty", [], []), progress=False)["problems"]
    assert len(problems) == 1 and "has no images (an empty set, or image ids that match none)" in problems[0]

    # and training refuses each in one line naming the set (Detectron2 would assert, or read the image saturated)
    from detectron2.config import get_cfg

    from nasnet_det.detection.datasets import CheckedDatasetMapper
    from nasnet_det.detection.train import Trainer

    cfg = get_cfg()
    for name, keep_empty, message in (("crowd", False, "1 images, 1 boxes, and no box that is not crowd / difficult"),
                                      ("crowd", True, "no box that is not crowd / difficult"),
                                      ("empty", False, "has no images (an empty set, or image ids that match none)")):
        cfg.DATASETS.TRAIN = (coco(name, [] if name == "empty" else [image],
                                   [] if name == "empty" else [{**box, "iscrowd": 1}]),)
        cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS = not keep_empty
        with pytest.raises(DatasetError, match=re.escape(message)) as e:
            Trainer.build_train_loader(cfg)
        assert "\n" not in str(e.value) and cfg.DATASETS.TRAIN[0] in str(e.value)
    record = {"file_name": str(tmp_path / "img" / "deep.png"), "image_id": 1, "height": 32, "width": 32,
              "annotations": []}
    with pytest.raises(DatasetError, match=r"deep.png \(image_id 1\) is I;16 \(16-bit or float\), which Detectron2 "
                                           "reads saturated: convert it to 8-bit RGB"):
        CheckedDatasetMapper(cfg, is_train=True)(record)


def test_evaluation_ground_truth_follows_edited_annotations(tmp_path):
    pytest.importorskip("detectron2")
    from detectron2.config import get_cfg

    from nasnet_det.detection.datasets import ensure_registered
    from nasnet_det.detection.train import Trainer

    root = tmp_path / "voc"
    _voc(root, (5, 5, 20, 20))
    name = ensure_registered(f"voc:{root}")
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path / "out")

    def ground_truth():
        evaluator = Trainer.build_evaluator(cfg, name)
        return [a["bbox"] for a in evaluator._coco_api.dataset["annotations"]]

    assert ground_truth() == [[4.0, 4.0, 16.0, 16.0]]
    _voc(root, (11, 5, 40, 30), image=False)  # the user fixes a box, then evaluates into the same OUTPUT_DIR
    assert ground_truth() == [[10.0, 4.0, 30.0, 26.0]]
    # a dataset named by a relative path with '..': its COCO cache stays inside OUTPUT_DIR
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    cwd = os.getcwd()
    os.chdir(deep)
    try:
        name = ensure_registered("voc:../../voc")
        cfg.OUTPUT_DIR = str(tmp_path / "out2")
        Trainer.build_evaluator(cfg, name)
        written = [os.path.join(d, f) for d, _, files in os.walk(tmp_path) for f in files if f.endswith(".json")]
        assert written and all(p.startswith(str(tmp_path / "out")) for p in written), written
        # and with no output_dir at all (a search child's evaluator) it still converts
        from nasnet_det.detection.evaluation import ImageIdCOCOEvaluator

        assert ImageIdCOCOEvaluator(name, tasks=("bbox",), output_dir=None)._coco_api.dataset["annotations"]
    finally:
        os.chdir(cwd)


def test_boxes_outside_inverted_or_empty_are_clipped_or_dropped_and_counted(tmp_path, caplog):
    pytest.importorskip("detectron2")
    import logging

    from detectron2.data import DatasetCatalog

    from nasnet_det.detection.datasets import ensure_registered

    root = tmp_path / "voc"
    _voc(root, (40, 30, 90, 60))  # sticks out right and bottom; the second object is inverted
    name = ensure_registered(f"voc:{root}")
    with caplog.at_level(logging.WARNING, logger="nasnet_det"):
        dicts = DatasetCatalog.get(name)
        DatasetCatalog.get(name)
    assert [a["bbox"] for a in dicts[0]["annotations"]] == [[39.0, 29.0, 64, 48]]
    lines = [r.getMessage() for r in caplog.records if "clipped" in r.getMessage()]
    assert len(lines) == 1 and "1 boxes clipped to their image, 1 dropped" in lines[0] and "a.jpg" in lines[0]


def test_an_unreadable_image_is_one_line_in_training_and_named_by_check_dataset(tmp_path, capsys):
    pytest.importorskip("detectron2")
    from detectron2.config import get_cfg
    from detectron2.data import DatasetCatalog
    from PIL import Image

    from nasnet_det.detection.datasets import CheckedDatasetMapper, ensure_registered
    from nasnet_det.errors import DatasetError

    root = tmp_path / "voc"
    _voc(root, (5, 5, 20, 20), size=(256, 192))
    jpeg = root / "JPEGImages" / "a.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:400])
    name = ensure_registered(f"voc:{root}")
    cfg = get_cfg()
    cfg.INPUT.FORMAT = "RGB"
    mapper = CheckedDatasetMapper(cfg, is_train=True)
    with pytest.raises(DatasetError, match=r"cannot read image .*a\.jpg \(image_id 0\).*nasnet-det check-dataset"):
        mapper(DatasetCatalog.get(name)[0])
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")  # 400 Mpixel: PIL refuses it as a decompression bomb
    with pytest.raises(DatasetError, match=r"bomb.png \(image_id 7\) is too large to decode safely .*resize it"):
        mapper({"file_name": str(tmp_path / "bomb.png"), "image_id": 7, "height": 8, "width": 8, "annotations": []})
    status, message = run_tool(capsys, "check_dataset", [name, "--no-progress"])
    assert status == 1 and re.search(r"error: problems in voc:.*\(1, first: .*a\.jpg \(image_id 0\): cannot decode", message)

    # met mid-training: the command's one line, without the traceback Detectron2's train loop logs first
    # (a process of its own: in pytest's, earlier tests' Detectron2 console handlers hold closed streams)
    done = subprocess.run([sys.executable, os.path.join(TOOLS, "train_net.py"), "--config", "Base-NASNet-FPN.yaml",
                           *TINY_DET, "DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", "()",
                           "OUTPUT_DIR", str(tmp_path / "out")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1 and "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    assert "No CUDA runtime" not in done.stderr
    assert re.fullmatch(r"error: cannot read image .*a\.jpg \(image_id 0\): .*", done.stderr.strip().splitlines()[-1])


def test_check_dataset_passes_a_good_set(tmp_path, capsys):
    pytest.importorskip("detectron2")
    _voc(tmp_path / "voc", (5, 5, 20, 20))
    module = _tool("check_dataset")
    assert cli.run(module.main, [f"voc:{tmp_path / 'voc'}", "--no-progress"]) is None
    assert "1 images, 1 boxes, 0 problems" in capsys.readouterr().out


def test_outputs_into_missing_folders_are_created(tmp_path):
    from nasnet_det.modeling.convert import save_for_detectron2

    path = save_for_detectron2(_net(), str(tmp_path / "new" / "deeper" / "w.pth"))
    assert os.path.isfile(path) and os.listdir(tmp_path / "new" / "deeper") == ["w.pth"]
    done = subprocess.run([sys.executable, os.path.join(TOOLS, "draw_genotype.py"), "nasnet_a", "--cell", "normal",
                           "--engine", "matplotlib", "--out", str(tmp_path / "drawings" / "n.png")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert os.listdir(tmp_path / "drawings") == ["n.png"]


def test_a_shipped_scratch_config_trains_without_diverging():
    pytest.importorskip("detectron2")
    from detectron2.modeling import build_model
    from detectron2.structures import Boxes, Instances
    from detectron2.utils.events import EventStorage

    from nasnet_det.detection.config import check_trainable, get_config

    cfg = get_config("nasnet_a_mobile_fpn_frcnn_scratch.yaml", [
        "MODEL.DEVICE", "cpu", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "64", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32"],
        register_datasets=False)
    check_trainable(cfg)  # accepted from scratch, unlike the FrozenBN configs
    torch.manual_seed(0)
    model = build_model(cfg).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    images = []
    for i in range(2):
        image = torch.randint(0, 256, (3, 96, 128)).float()
        gt = Instances((96, 128))
        gt.gt_boxes = Boxes(torch.tensor([[10.0 + i, 12.0, 70.0, 80.0]]))
        gt.gt_classes = torch.tensor([i])
        images.append({"image": image, "instances": gt, "height": 96, "width": 128})
    totals = []
    with EventStorage(0):
        for _ in range(5):
            loss = sum(model(images).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            totals.append(loss.item())
    assert all(t == t and t < 20 for t in totals), totals  # FrozenBN from scratch reached 1356, then NaN


def test_another_arch_on_resume_or_eval_is_named_and_leaves_the_run_config(tmp_path, capsys):
    pytest.importorskip("detectron2")
    from nasnet_det.commands.train_net import main
    from nasnet_det.detection.shapes import generate

    sets = generate(str(tmp_path / "shapes"), train=4, val=2, size=64, seed=0)
    out = tmp_path / "det"
    args = ["--config", "Base-NASNet-FPN.yaml", *TINY_DET, "DATASETS.TRAIN", f"('{sets['train']}',)",
            "DATASETS.TEST", "()", "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "64",
            "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "2", "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(out)]
    cli.run(main, args)  # a finished run
    config = (out / "config.yaml").read_text()
    weights = str(out / "model_final.pth")
    for extra in (["--resume"], ["--eval-only"]):
        argv = extra + args + ["MODEL.NASNET.ARCH", "1@384", "MODEL.WEIGHTS", weights, "SOLVER.MAX_ITER", "4"]
        status, message = run_tool(capsys, "train_net", argv)
        assert status != 0 and "\n" not in message, message
        assert message == (f"error: {weights} holds another NASNet than MODEL.NASNET describes (checkpoint vs config): "
                           "num_conv_filters 8 vs 16")
        assert (out / "config.yaml").read_text() == config  # the run's own config, not the failed invocation's


@pytest.mark.parametrize("tool", ["rank", "latency_table"])
def test_a_second_writer_into_the_same_out_is_refused_while_the_first_runs(tmp_path, tool):
    cells = tmp_path / "cells.jsonl"
    cells.write_text('{"genotype": "nasnet_a"}\n')
    out = tmp_path / "out.jsonl"
    what = tool.replace("_", "-")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from nasnet_det.io import FolderLock; "
                               f"FolderLock.for_file({str(out)!r}, {what!r}).acquire(); "
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    argv = ([str(cells), "--method", "prior", "--no-progress"] if tool == "rank" else ["--arch", "1@96", "--cells", "1"])
    try:
        assert holder.stdout.readline().strip() == "held"
        done = subprocess.run([sys.executable, os.path.join(TOOLS, f"{tool}.py"), *argv, "--out", str(out)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1 and not out.exists() and not (tmp_path / "out.jsonl.part").exists()
        assert done.stderr.strip().splitlines()[-1].startswith(
            f"error: cannot run this {what} in {tmp_path}: another process (pid {holder.pid}) is writing there")
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("has_resume", [True, False])
def test_the_signal_line_names_resume_only_for_a_command_that_has_it(has_resume, capsys):
    from nasnet_det import cli

    def main(argv):
        p = cli.ArgumentParser(prog="cmd")
        if has_resume:
            p.add_argument("--resume", action="store_true")
        p.parse_args(argv)
        raise KeyboardInterrupt  # Ctrl-C mid-work

    with pytest.raises(SystemExit) as stopped:
        cli.run(main, [])
    assert stopped.value.code == 130
    line = capsys.readouterr().err.strip()
    assert line == "stopped by SIGINT: what was saved is intact; run the same command " + (
        "with --resume to continue" if has_resume else "again")
