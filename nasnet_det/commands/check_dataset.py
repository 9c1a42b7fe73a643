"""Check a detection dataset up front: decode every image, validate every record.

    python tools/check_dataset.py voc:datasets/raccoon
    python tools/check_dataset.py coco:images/:annotations.json coco_2017_val

Takes the names DATASETS.TRAIN / TEST take (coco:, voc:, NAME@IDS.txt, Detectron2's built-ins).
Prints each problem with its file and record, and exits non-zero if there is any; a truncated
JPEG found here does not stop a training run hours in.
"""
from .. import cli
from ..detection.datasets import check_dataset
from ..errors import DatasetError


def main(argv=None):
    p = cli.ArgumentParser(description=__doc__)
    p.add_argument("datasets", nargs="+", metavar="DATASET")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    failed = []
    for name in args.datasets:
        report = check_dataset(name, progress=not args.no_progress)
        for problem in report["problems"]:
            print(f"{name}: {problem}")
        print(f"{name}: {report['images']} images, {report['boxes']} boxes, {len(report['problems'])} problems")
        if report["problems"]:
            failed.append(f"{name} ({len(report['problems'])}, first: {report['problems'][0]})")
    if failed:
        raise DatasetError(f"problems in {'; '.join(failed)}")


if __name__ == "__main__":
    cli.run(main)
