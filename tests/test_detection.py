"""Detectron2 integration: configs, both layouts, weights, datasets, training and evaluation."""
import json
import logging
import math
import os

import pytest
import torch

pytest.importorskip("detectron2")

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

import nasnet_det.detection  # noqa: E402,F401  (registers the backbones)
from nasnet_det.detection.datasets import ensure_registered  # noqa: E402
from nasnet_det.errors import ConfigError, DatasetError  # noqa: E402
from nasnet_det.commands.train_net import argument_parser, setup  # noqa: E402
from nasnet_det.commands.train_net import train as main  # noqa: E402
from nasnet_det.config_files import get_config_file  # noqa: E402
from nasnet_det.detection.config import get_config, shipped_configs  # noqa: E402
from nasnet_det.detection.train import Trainer  # noqa: E402
from nasnet_det.modeling import build_nasnet  # noqa: E402
from nasnet_det.modeling.convert import save_for_detectron2  # noqa: E402

from conftest import RACCOON, TINY_DETECTOR, randomize_batch_norm  # noqa: E402

FRCNN, FPN = "Base-NASNet-FRCNN.yaml", "Base-NASNet-FPN.yaml"
# a small NASNet-A (1 normal cell per stage, F = 8) and small heads: seconds per step on a CPU
TINY = TINY_DETECTOR + ["MODEL.ROI_BOX_HEAD.FC_DIM", "128", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "200",
                        "MODEL.RPN.POST_NMS_TOPK_TEST", "100", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "64"]


def _one_image(h, w, num_classes=3):
    image = torch.randint(0, 256, (3, h, w)).float()
    gt = Instances((h, w))
    gt.gt_boxes = Boxes(torch.tensor([[5.0, 7.0, w * 0.6, h * 0.7]]))
    gt.gt_classes = torch.tensor([num_classes - 1])
    return {"image": image, "instances": gt, "height": h, "width": w}


def _train_and_infer(model, batch):
    model.train()
    with EventStorage(0):
        losses = model(batch)
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        outputs = model([{k: v for k, v in b.items() if k != "instances"} for b in batch])
    return losses, outputs


# ------------------------------------------------------------------------------------------------

# every network config (the demo's runs in test_demo; the TF-split config is nasnet_a_large_frcnn on other data)
@pytest.mark.parametrize("name", [c for c in shipped_configs() if not c.startswith(("Base-", "demo_")) and "tf_minival" not in c])
def test_every_shipped_config_trains_and_infers(name):
    opts = ["MODEL.DEVICE", "cpu", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "32", "MODEL.RPN.POST_NMS_TOPK_TEST", "16",
            "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "16"]
    cfg = get_config(name, opts, register_datasets=False)
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 80 and cfg.DATASETS.TEST == ("coco_2017_val",)
    model = build_model(cfg)
    losses, outputs = _train_and_infer(model, [_one_image(97, 128, 80)])
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"}
    assert all(math.isfinite(v.item()) for v in losses.values())
    assert outputs[0]["instances"].image_size == (97, 128)
    frozen = [n for n, p in model.backbone.named_parameters() if not p.requires_grad]
    if name.endswith("_scratch.yaml"):  # from scratch: nothing frozen, every norm learns its statistics
        assert not frozen and cfg.MODEL.WEIGHTS == "" and cfg.MODEL.NASNET.NORM == "SyncBN"
        assert not any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    else:  # FREEZE_AT 2
        assert frozen and all(".net.stem." in f".{n}" or ".cells.cell_stem_0." in n for n in frozen)


def test_the_backbones_honour_detectrons_freeze_at_and_input_shape():
    from detectron2.config import get_cfg
    from detectron2.modeling import build_backbone

    from nasnet_det.detection import add_nasnet_config

    cfg = get_config(FPN, TINY + ["MODEL.BACKBONE.FREEZE_AT", "3"], register_datasets=False)
    backbone = build_backbone(cfg, ShapeSpec(channels=1))
    units = {n.split(".")[2] if ".cells." in n else "stem" for n, p in backbone.bottom_up.named_parameters()
             if not p.requires_grad}
    assert units == {"stem", "cell_stem_0", "cell_stem_1"}  # Detectron2's key, three units
    assert backbone.bottom_up.net.stem.conv.in_channels == 1  # from input_shape
    for bad, message in (("-1", r"FREEZE_AT -1: this backbone has \d+ units"), ("99", r"FREEZE_AT 99")):
        with pytest.raises(ConfigError, match=message):
            build_model(get_config(FPN, TINY + ["MODEL.BACKBONE.FREEZE_AT", bad], register_datasets=False))
    # Detectron2's own tools (get_cfg + add_nasnet_config) with the old key: one line, not a silent no-op
    plain = add_nasnet_config(get_cfg())
    plain.merge_from_file(get_config_file(FPN))
    plain.merge_from_list(TINY + ["MODEL.NASNET.FREEZE_AT", "2"])
    with pytest.raises(ConfigError, match=r"set Detectron2's own key instead, MODEL.BACKBONE.FREEZE_AT 2"):
        build_model(plain)


def test_paper_layout_matches_the_classification_network():
    cfg = get_config(FRCNN, TINY + ["MODEL.NASNET.HEAD_NORM", "BN"], register_datasets=False)
    model = build_model(cfg).eval()
    net = build_nasnet("nasnet_a", arch="1@192", stem_multiplier=1.0, num_classes=0)
    randomize_batch_norm(net).eval()
    state = net.state_dict()
    # the two stages hold every parameter of the classification network, under its names
    ours = {k.split(".", 2)[2]: k for k in model.state_dict() if k.startswith(("backbone.net.", "roi_heads.res5."))}
    assert set(ours) == set(state)
    model.load_state_dict({ours[k]: v for k, v in state.items()}, strict=False)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        pair = model.backbone(x)["pair16"]
        assert pair.shape[-1] == 6 and model.backbone.output_shape()["pair16"].stride == 16
        assert torch.allclose(model.roi_heads.res5(pair), net.forward_features(x), atol=1e-5)


@pytest.mark.parametrize("config", [FRCNN, FPN])
@pytest.mark.parametrize("size", [(96, 128), (97, 131), (161, 83)])
def test_layouts_handle_odd_and_even_sizes(config, size):
    model = build_model(get_config(config, TINY + ["MODEL.ROI_HEADS.NUM_CLASSES", "3"], register_datasets=False))
    losses, outputs = _train_and_infer(model, [_one_image(*size), _one_image(size[1], size[0])])
    assert all(math.isfinite(v.item()) for v in losses.values())
    assert [o["instances"].image_size for o in outputs] == [size, size[::-1]]
    model.eval()
    images = model.preprocess_image([{"image": torch.zeros(3, *size)}])
    with torch.no_grad():
        features = model.backbone(images.tensor)
    for name, shape in model.backbone.output_shape().items():
        assert features[name].shape[1] == shape.channels
        after_conv0 = (images.tensor.shape[-2] - 3) // 2 + 1  # conv0 is VALID, later halvings 'SAME'
        assert features[name].shape[-2] == math.ceil(after_conv0 / (shape.stride // 2))


def test_imagenet_weights_load_through_model_weights(tmp_path, caplog):
    net = randomize_batch_norm(build_nasnet("nasnet_a", arch="1@192", stem_multiplier=1.0, num_classes=10))
    path = save_for_detectron2(net, str(tmp_path / "imagenet.pth"))
    for config in (FRCNN, FPN):
        cfg = get_config(config, TINY + ["MODEL.WEIGHTS", path], register_datasets=False)
        model = build_model(cfg)
        with caplog.at_level(logging.WARNING):
            DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
        own = {k: v for k, v in model.state_dict().items() if ".net." in k or "roi_heads.res5." in k}
        assert len(own) == len([k for k in net.state_dict() if not k.startswith("classifier.")])
        for key, value in own.items():
            source = key.split(".net.", 1)[1] if ".net." in key else key.split("roi_heads.res5.", 1)[1]
            assert torch.equal(value, net.state_dict()[source]), key


# ------------------------------------------------------------------------------------------------
# Configs, arguments and datasets: errors name the problem

def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found.*nasnet_a_large_frcnn.yaml"):
        get_config("no_such.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(f'_BASE_: "{os.path.join(os.path.dirname(__file__), "..", "configs", FPN)}"\nMODEL:\n  NASNET:\n    GENOTYP: "nasnet_a"\n')
    with pytest.raises(ConfigError, match="GENOTYP"):
        get_config(str(bad))
    with pytest.raises(ConfigError, match="MODEL.NASNET.NOPE"):
        get_config(FPN, ["MODEL.NASNET.NOPE", "1"])
    with pytest.raises(ConfigError, match="not both"):
        setup(argument_parser().parse_args(["--config", FPN, "--config-file", str(bad)]))
    cfg = get_config("nasnet_a_mobile_frcnn.yaml", register_datasets=False)
    assert cfg.MODEL.NASNET.ARCH == "4@1056" and cfg.MODEL.ROI_HEADS.NAME == "NASNetROIHeads"  # _BASE_ merged


def test_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="dataset folder not found: /nonexistent"):
        ensure_registered("voc:/nonexistent")
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "Annotations" / "a.xml").write_text("<annotation><size><width>3</width>")
    with pytest.raises(DatasetError, match=r"malformed VOC annotation .*a\.xml"):
        ensure_registered(f"voc:{tmp_path}")
    bad_json = tmp_path / "ann.json"
    bad_json.write_text('{"images": []}')
    with pytest.raises(DatasetError, match=r"malformed COCO annotation file .*ann\.json.*categories"):
        ensure_registered(f"coco:{tmp_path}:{bad_json}")
    with pytest.raises(DatasetError, match="unknown dataset 'my_set'"):
        ensure_registered("my_set")


def test_coco_by_path_and_image_id_lists(tmp_path):
    from PIL import Image

    for i in (1, 2, 3):
        Image.new("RGB", (40, 30)).save(tmp_path / f"{i}.jpg")
    coco = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 40, "height": 30} for i in (1, 2, 3)],
            "annotations": [{"id": 10 + i, "image_id": i, "category_id": 7, "bbox": [1, 2, 10, 5],
                             "area": 50, "iscrowd": 0} for i in (1, 2, 3)],
            "categories": [{"id": 7, "name": "thing"}, {"id": 3, "name": "other"}]}
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(coco))
    ids = tmp_path / "ids.txt"
    ids.write_text("3\n1\n")
    name = ensure_registered(f"coco:{tmp_path}:{ann}")
    assert MetadataCatalog.get(name).thing_classes == ["other", "thing"]
    dicts = DatasetCatalog.get(name)
    assert [d["annotations"][0]["category_id"] for d in dicts] == [1, 1, 1]
    view = ensure_registered(f"{name}@{ids}")
    assert sorted(d["image_id"] for d in DatasetCatalog.get(view)) == [1, 3]
    assert MetadataCatalog.get(view).eval_image_ids == [1, 3]


# ------------------------------------------------------------------------------------------------
# Training on real photos

def test_raccoon_training_checkpoint_resume_and_eval_only(raccoon_voc, tmp_path, caplog):
    out = str(tmp_path / "run")
    opts = TINY + ["DATASETS.TRAIN", f"('voc:{raccoon_voc}:train',)", "DATASETS.TEST", f"('voc:{raccoon_voc}:val',)",
                   "INPUT.MIN_SIZE_TRAIN", "(192,)", "INPUT.MAX_SIZE_TRAIN", "256", "INPUT.MIN_SIZE_TEST", "192",
                   "INPUT.MAX_SIZE_TEST", "256", "SOLVER.IMS_PER_BATCH", "4", "SOLVER.BASE_LR", "0.01",
                   "SOLVER.STEPS", "()", "SOLVER.WARMUP_ITERS", "5", "SOLVER.CHECKPOINT_PERIOD", "30",
                   "DATALOADER.NUM_WORKERS", "0", "SEED", "1", "OUTPUT_DIR", out]
    with caplog.at_level(logging.INFO, logger="nasnet_det"):
        cfg = setup(argument_parser().parse_args(["--config", FPN] + opts + ["SOLVER.MAX_ITER", "60"]))
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1  # from the training set's class list, and said so
    assert "NUM_CLASSES: 80 -> 1" in caplog.text

    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    results = trainer.train()
    total = [v for v, _ in trainer.storage.history("total_loss").values()]
    rpn = [v for v, _ in trainer.storage.history("loss_rpn_cls").values()]
    assert len(total) == 60
    assert sum(total[-10:]) / 10 < sum(total[:3]) / 3  # the loss goes down
    assert sum(rpn[-10:]) / 10 < 0.5 * rpn[0]
    ap = results["bbox"]
    assert all(math.isfinite(ap[k]) for k in ("AP", "AP50", "AP75"))

    # --eval-only of the final checkpoint reproduces the metrics, and writes eval_results.json
    test_name = f"voc:{raccoon_voc}:val"
    evaluated = main(argument_parser().parse_args(
        ["--config", FPN, "--eval-only"] + opts + ["MODEL.WEIGHTS", os.path.join(out, "model_final.pth")]))
    assert evaluated["bbox"]["AP"] == pytest.approx(ap["AP"]) and evaluated["bbox"]["AP50"] == pytest.approx(ap["AP50"])
    with open(os.path.join(out, "eval_results.json")) as f:
        assert json.load(f)[test_name]["bbox"]["AP"] == pytest.approx(ap["AP"])

    # --resume of a finished run loads the last checkpoint and evaluates it again
    resumed = main(argument_parser().parse_args(["--config", FPN, "--resume"] + opts + ["SOLVER.MAX_ITER", "60"]))
    assert resumed["bbox"]["AP"] == pytest.approx(ap["AP"])

    # --resume of an interrupted run continues from its last checkpoint (iteration 30)
    with open(os.path.join(out, "last_checkpoint"), "w") as f:
        f.write("model_0000029.pth")
    cfg = setup(argument_parser().parse_args(["--config", FPN, "--resume"] + opts + ["SOLVER.MAX_ITER", "40"]))
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == 30
    trainer.train()
    assert [it for _, it in trainer.storage.history("total_loss").values()] == list(range(30, 40))


def test_the_papers_minival_is_registered_and_one_config_name(tmp_path):
    from nasnet_det.detection.datasets import TF_MINIVAL_IDS, register_image_ids

    ids = [int(line) for line in open(TF_MINIVAL_IDS)]
    assert len(ids) == len(set(ids)) == 8059  # tensorflow/models' mscoco_minival_ids.txt, unchanged
    meta = MetadataCatalog.get("coco_2014_minival_tf")
    assert "coco_2014_minival_tf" in DatasetCatalog.list() and len(meta.eval_image_ids) == 8059
    assert meta.json_file.endswith("instances_val2014.json")  # ground truth of COCO 2014 val, scored on those ids
    assert MetadataCatalog.get("coco_2014_valminusminival_tf").get("eval_image_ids", None) is None
    cfg = get_config("nasnet_a_large_frcnn_tf_minival.yaml", register_datasets=False)
    assert cfg.DATASETS.TEST == ("coco_2014_minival_tf",)
    assert cfg.DATASETS.TRAIN == ("coco_2014_train", "coco_2014_valminusminival_tf")
    # the split itself, on a stand-in for COCO 2014 val: minival ids in one part, the rest in the other
    DatasetCatalog.register("fake_2014_val", lambda: [{"image_id": i} for i in (ids[0], ids[1], 9, 11)])
    MetadataCatalog.get("fake_2014_val").set(thing_classes=["a"])
    register_image_ids("fake_minival", "fake_2014_val", TF_MINIVAL_IDS)
    register_image_ids("fake_valminusminival", "fake_2014_val", TF_MINIVAL_IDS, exclude=True)
    assert [d["image_id"] for d in DatasetCatalog.get("fake_minival")] == ids[:2]
    assert [d["image_id"] for d in DatasetCatalog.get("fake_valminusminival")] == [9, 11]
