"""Run a NASNet detector on photos: one drawn image per input and OUT/predictions.json (COCO results).

    python tools/predict.py --config-file runs/demo/detection_raccoon/config.yaml \\
        --input photos/ more/*.jpg --output runs/predict MODEL.WEIGHTS runs/demo/detection_raccoon/model_final.pth
    python tools/predict.py --config nasnet_a_mobile_fpn_frcnn.yaml --input a.jpg --output out \\
        --runtime onnxruntime --model-dir exported/        # the files tools/export.py wrote

Inputs are image files, globs or folders. A path with no image or an image that cannot be read is
reported in one line and skipped; the others are done (the exit status is then 1).
"""
import argparse
import logging
import os

from .. import cli
from ..io import refuse_file_as_folder
from ..detection.predict import RUNTIMES, Predictor, collect_inputs, load_config, predict, require_images


def main(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("--config", metavar="NAME", help="a shipped config (or a path)")
    p.add_argument("--config-file", metavar="PATH", help="a config file, e.g. a run's OUTPUT_DIR/config.yaml")
    p.add_argument("--input", nargs="+", required=True, metavar="PATH", help="image files, globs or folders")
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--confidence-threshold", type=float, default=0.5)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--runtime", choices=RUNTIMES, default="eager")
    p.add_argument("--model-dir", metavar="DIR", help="with --runtime torchscript/onnxruntime: tools/export.py's --output")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--allow-pickle", action="store_true",
                   help="load .pkl weights (unpickling runs any code the file holds: trusted files only)")
    p.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides, e.g. MODEL.WEIGHTS x.pth")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if bool(args.config) == bool(args.config_file):
        p.error("give --config NAME or --config-file PATH (one of them)")
    if args.batch_size < 1:
        p.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if not 0.0 <= args.confidence_threshold <= 1.0:  # also refuses nan
        p.error(f"--confidence-threshold must be a score in [0, 1], got {args.confidence_threshold}")
    if args.allow_pickle:
        os.environ["NASNET_DET_ALLOW_PICKLE"] = "1"
    files, problems = collect_inputs(args.input)
    require_images(files, problems)  # nothing to predict on: one line naming every input
    for problem in problems:  # some inputs name nothing: a line each, and the rest is predicted
        print(f"error: {problem}", flush=True)
    refuse_file_as_folder(args.output, "--output")
    cfg = load_config(args.config or args.config_file, args.opts)
    predictor = Predictor(cfg, args.runtime, args.model_dir)
    result = predict(predictor, files, args.output, args.batch_size, args.confidence_threshold,
                     progress=not args.no_progress, problems=problems, report=lambda line: print(line, flush=True))
    print(f"{result['images']} images, {result['detections']} detections (score >= {args.confidence_threshold}) "
          f"-> {args.output}/ and {args.output}/predictions.json")
    if result["problems"]:
        raise SystemExit(1)


if __name__ == "__main__":
    cli.run(main)
