"""Export a NASNet detector to TorchScript or ONNX (Detectron2's TracingAdapter), checked against eager.

    python tools/export.py --config-file runs/demo/detection_raccoon/config.yaml --format torchscript \\
        --output exported MODEL.WEIGHTS runs/demo/detection_raccoon/model_final.pth
    python tools/export.py --config nasnet_a_mobile_fpn_frcnn.yaml --format onnx --output exported MODEL.WEIGHTS model.pth

Writes OUT/model.ts or OUT/model.onnx (with ONNX also OUT/backbone.onnx: NASNet + FPN features) and
OUT/metadata.json; prints the largest difference to the eager model at an image size other than the
traced one. tools/predict.py --runtime torchscript|onnxruntime --model-dir OUT runs them.
"""
import argparse
import os

import torch

from .. import cli
from ..errors import UserError
from ..io import FolderLock, refuse_file_as_folder
from ..detection.export import FORMATS, export
from ..detection.predict import Predictor, load_config

# a real photo to trace on (the shipped raccoon set), so the traced path sees detections
SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "raccoon", "images",
                      "raccoon-1.jpg")


def main(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--config", metavar="NAME")
    p.add_argument("--config-file", metavar="PATH")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--sample-image", default=SAMPLE, help="the image to trace on (default: a shipped raccoon photo)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="load .pkl weights (unpickling runs any code the file holds: trusted files only)")
    p.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE")
    args = p.parse_args(argv)
    if getattr(args, "allow_pickle", False):
        os.environ["NASNET_DET_ALLOW_PICKLE"] = "1"
    if bool(args.config) == bool(args.config_file):
        p.error("give --config NAME or --config-file PATH (one of them)")
    refuse_file_as_folder(args.output, "--output")
    cfg = load_config(args.config or args.config_file, ["MODEL.DEVICE", "cpu"] + list(args.opts))  # traced on the CPU
    from detectron2.data.detection_utils import read_image

    try:  # the sample before the model: a missing or broken photo is one line, not a traceback after the build
        sample = read_image(args.sample_image, format=cfg.INPUT.FORMAT)
    except (OSError, ValueError, SyntaxError) as e:
        raise UserError(f"--sample-image {args.sample_image}: cannot read it as an image ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:200]}); give a JPEG or PNG photo") from None
    # one writer per output folder, and a folder we cannot write to is refused before the export runs
    lock = FolderLock(args.output, "export").acquire(UserError)
    try:
        predictor = Predictor(cfg, "eager", purpose="export")
        traced = predictor.prepare(sample)
        # the check runs on another size than the trace saw: the same photo with a border added
        check = torch.nn.functional.pad(traced, (0, 53, 0, 37), value=127.0)
        report = export(predictor.model, cfg, traced, check, args.format, args.output, predictor.class_names)
    finally:
        lock.release()
    files = [report["file"]] + [v for k, v in report.items() if k.endswith("_file")]
    print(f"wrote {', '.join(files)}, {args.output}/metadata.json")


if __name__ == "__main__":
    cli.run(main)
