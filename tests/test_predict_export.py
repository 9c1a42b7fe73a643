"""Predict on photos and ship the detector: drawn images, COCO results, TorchScript and ONNX files
that give the eager model's boxes at an image size other than the one traced."""
import json
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("detectron2")

from detectron2.modeling import build_model  # noqa: E402

from nasnet_det import cli  # noqa: E402
from nasnet_det.commands import export as export_command  # noqa: E402
from nasnet_det.commands import predict as predict_command  # noqa: E402
from nasnet_det.detection.checkpoint import NASNetCheckpointer  # noqa: E402
from nasnet_det.errors import CheckpointError  # noqa: E402
from nasnet_det.detection.config import get_config  # noqa: E402

from conftest import RACCOON, TINY_DETECTOR  # noqa: E402

# a small NASNet-A FPN detector for the raccoon class, random weights, every detection kept
OPTS = TINY_DETECTOR + [
        "MODEL.ROI_HEADS.NUM_CLASSES", "1", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
        "MODEL.RPN.POST_NMS_TOPK_TEST", "50", "TEST.DETECTIONS_PER_IMAGE", "20",
        "INPUT.MIN_SIZE_TEST", "160", "INPUT.MAX_SIZE_TEST", "240"]
PHOTOS = [os.path.join(RACCOON, "images", f"raccoon-{i}.jpg") for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A detector checkpoint saved as training saves it (class names travel with it)."""
    root = tmp_path_factory.mktemp("detector")
    cfg = get_config("Base-NASNet-FPN.yaml", OPTS + ["DATASETS.TRAIN", f"('voc:{RACCOON}',)", "DATASETS.TEST", "()"])
    torch.manual_seed(0)
    NASNetCheckpointer(build_model(cfg), str(root), cfg=cfg).save("model")
    return str(root / "model.pth")


def _run(module, argv, capsys):
    """(exit status, everything printed); a user error's one line ends the text."""
    message = ""
    try:
        cli.run(module.main, argv)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        message = e.code if isinstance(e.code, str) else ""
    captured = capsys.readouterr()
    return code, captured.out + captured.err + message


def _png_header_only(width, height):
    """A PNG that declares ``width`` x ``height`` grey pixels and holds almost no data."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_predict_draws_each_photo_writes_coco_results_and_skips_what_it_cannot_read(weights, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in PHOTOS[1:]:
        shutil.copy(path, folder)
    (tmp_path / "broken.jpg").write_bytes(open(PHOTOS[0], "rb").read()[:300])
    Image.new("RGB", (4000, 3)).save(tmp_path / "thin.png")  # resized for testing to 0 px high
    (tmp_path / "bomb.png").write_bytes(_png_header_only(30000, 30000))  # 900 Mpx declared: PIL's bomb check
    Image.fromarray(np.full((48, 64), 4000, dtype=np.uint16)).save(tmp_path / "deep.png")  # read saturated
    out = tmp_path / "out"
    code, text = _run(predict_command, ["--config", "Base-NASNet-FPN.yaml", "--input", PHOTOS[0], str(folder),
                                        str(tmp_path / "broken.jpg"), str(tmp_path / "thin.png"), str(tmp_path / "bomb.png"),
                                        str(tmp_path / "deep.png"), str(tmp_path / "nothing-*.png"), "--output", str(out),
                                        "--confidence-threshold", "0.0", "--no-progress"] + OPTS + ["MODEL.WEIGHTS", weights],
                      capsys)
    assert code == 1  # five inputs could not be done, and said so in one line each
    errors = [line for line in text.splitlines() if line.startswith("error: ")]
    assert any("deep.png: a I;16 image (16-bit or float), which Detectron2 reads saturated" in e for e in errors)
    assert len(errors) == 5 and any("nothing-*.png: no such image" in e for e in errors)
    assert any("broken.jpg: cannot read the image" in e for e in errors)
    assert any("thin.png: 4000x3 px is too thin: the test resize" in e for e in errors)
    assert any("bomb.png: cannot read the image (DecompressionBombError" in e for e in errors)
    assert sorted(os.listdir(out)) == ["predictions.json", "raccoon-1.jpg", "raccoon-2.jpg", "raccoon-3.jpg"]
    predictions = json.load(open(out / "predictions.json"))
    assert {p["file_name"] for p in predictions} == {PHOTOS[0]} | {str(folder / os.path.basename(p)) for p in PHOTOS[1:]}
    assert {p["image_id"] for p in predictions} == {0, 1, 2}
    sizes = {p: Image.open(p).size for p in {q["file_name"] for q in predictions}}
    for p in predictions:
        assert set(p) == {"image_id", "file_name", "category_id", "category_name", "bbox", "score"}
        assert p["category_id"] == 0 and p["category_name"] == "raccoon"  # the names stored with the weights
        x, y, w, h = p["bbox"]
        width, height = sizes[p["file_name"]]
        assert 0 <= x and 0 <= y and w >= 0 and h >= 0 and x + w <= width + 0.01 and y + h <= height + 0.01
        assert 0.0 <= p["score"] <= 1.0


def test_predict_with_weights_of_another_model_is_one_line(tmp_path, capsys):
    import torchvision

    other = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), other)
    code, text = _run(predict_command, ["--config", "Base-NASNet-FPN.yaml", "--input", PHOTOS[0], "--output",
                                        str(tmp_path / "out"), "--no-progress"] + OPTS + ["MODEL.WEIGHTS", str(other)], capsys)
    assert code == 1
    last = text.strip().splitlines()[-1]
    assert last.startswith("error: ") and "fills" in last and "another model" in last


def test_a_shipped_config_takes_the_class_count_and_names_stored_in_the_weights(weights, caplog):
    from nasnet_det.detection.predict import Predictor, load_config

    opts = list(OPTS)
    i = opts.index("MODEL.ROI_HEADS.NUM_CLASSES")
    del opts[i: i + 2]  # the config's own 80 COCO classes; the weights hold one, "raccoon"
    with caplog.at_level("INFO", logger="nasnet_det"):
        cfg = load_config("Base-NASNet-FPN.yaml", opts + ["MODEL.WEIGHTS", weights])
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1
    assert "trained on 1 classes (raccoon); the config says MODEL.ROI_HEADS.NUM_CLASSES 80" in caplog.text
    assert Predictor(cfg).class_names == ["raccoon"]  # and the strict load takes every tensor


def test_a_failed_export_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    from nasnet_det.detection.export import export_onnx

    path = tmp_path / "model.onnx"
    path.write_bytes(b"the previous export")

    def fails_halfway(module, args, f, **kwargs):
        open(f, "wb").write(b"half")
        raise OSError(27, "File too large")  # what `ulimit -f` does to a write

    monkeypatch.setattr(torch.onnx, "export", fails_halfway)
    from nasnet_det.errors import StorageError

    with pytest.raises(StorageError, match=rf"cannot write {path}: file too large \(the previous file is intact\)"):
        export_onnx(torch.nn.Linear(2, 2), (torch.randn(1, 2),), str(path), ["x"], ["y"], {})
    assert path.read_bytes() == b"the previous export" and sorted(os.listdir(tmp_path)) == ["model.onnx"]


def test_a_corrupt_export_metadata_is_one_line(tmp_path):
    from nasnet_det.detection.predict import Predictor, load_config

    (tmp_path / "model.ts").write_bytes(b"")
    (tmp_path / "metadata.json").write_text("{not json")
    cfg = load_config("Base-NASNet-FPN.yaml", OPTS)
    with pytest.raises(CheckpointError, match=r"metadata.json is not readable JSON \(JSONDecodeError\): export again"):
        Predictor(cfg, runtime="torchscript", model_dir=str(tmp_path))


@pytest.mark.parametrize("fmt,runtime", [("torchscript", "torchscript"), ("onnx", "onnxruntime")])
def test_exported_detector_gives_the_eager_boxes_at_another_size(fmt, runtime, weights, tmp_path, capsys):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    exported = tmp_path / "exported"
    code, text = _run(export_command, ["--config", "Base-NASNet-FPN.yaml", "--format", fmt, "--output", str(exported)]
                      + OPTS + ["MODEL.WEIGHTS", weights], capsys)
    assert code == 0, text
    line = next(l for l in text.splitlines() if "vs eager at" in l and "traced at" in l)
    detections = int(line.split(": ")[1].split(" detections")[0])
    assert detections > 0 and float(line.rsplit("max abs diff ", 1)[1]) < 1e-3, line
    if fmt == "onnx":
        for part in ("backbone.onnx", "nasnet.onnx"):  # NASNet + FPN features; the NASNet's own taps
            checked = next(l for l in text.splitlines() if l.startswith(part))
            assert float(checked.rsplit("max abs diff ", 1)[1]) < 1e-3, checked
            assert (exported / part).is_file()
    assert json.load(open(exported / "metadata.json"))["thing_classes"] == ["raccoon"]

    # predict.py on the exported file: the eager model's predictions, photo by photo
    results = {}
    for name, extra in (("eager", []), (runtime, ["--runtime", runtime, "--model-dir", str(exported)])):
        out = tmp_path / name
        code, text = _run(predict_command, ["--config", "Base-NASNet-FPN.yaml", "--input", *PHOTOS, "--output", str(out),
                                            "--batch-size", "1", "--confidence-threshold", "0.0", "--no-progress"]
                          + extra + OPTS + ["MODEL.WEIGHTS", weights], capsys)
        assert code == 0, text
        results[name] = json.load(open(out / "predictions.json"))
    eager, other = results["eager"], results[runtime]
    assert len(eager) == len(other) > 0
    for a, b in zip(eager, other):
        assert (a["image_id"], a["category_id"]) == (b["image_id"], b["category_id"])
        assert np.allclose(a["bbox"] + [a["score"]], b["bbox"] + [b["score"]], atol=1e-2)
