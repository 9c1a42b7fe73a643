"""The small CPU detector's recipe, in one place: the demo, the detection reward of the one-shot
search and the detection benchmarks read it from here.

- :data:`DETECTION_CONFIG`: the shipped config (``configs/demo_fpn_cpu.yaml``) every short run starts from;
- :func:`detection_opts`: what a short run sets on top of it (cell, weights, data, size, schedule);
- :data:`SHAPES`: the generated shapes set's size (images, pixels);
- :data:`DETECTION_CHILD`: the detection supernet's child settings where the command line is silent.

No Detectron2 import here: the recipe is data.
"""
from __future__ import annotations

DETECTION_CONFIG = "demo_fpn_cpu.yaml"
SHAPES = dict(train=400, val=80, size=128)
# the detection supernet at the demo detector's size (3 cells, 128 px images)
DETECTION_CHILD = dict(img_size=128, num_cells=3, stem_multiplier=1.0, batch_size=4, lr=0.02)


def detection_opts(genotype_path: str, arch: str, weights: str, train: str, test: str, iters: int, out: str,
                   size: int, batch: int, seed: int, checkpoints: int = 5):
    """What a short run sets on top of :data:`DETECTION_CONFIG` (the demo's, the one-shot detection
    benchmark's): its cell, weights, data, square image size and schedule."""
    return ["MODEL.NASNET.GENOTYPE", genotype_path, "MODEL.NASNET.ARCH", arch, "MODEL.WEIGHTS", weights,
            "DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", f"('{test}',)",
            "INPUT.MIN_SIZE_TRAIN", f"({size},)", "INPUT.MAX_SIZE_TRAIN", str(size),
            "INPUT.MIN_SIZE_TEST", str(size), "INPUT.MAX_SIZE_TEST", str(size),
            "SOLVER.IMS_PER_BATCH", str(batch),
            "SOLVER.MAX_ITER", str(iters), "SOLVER.STEPS", f"({int(iters * 0.8)},)",
            "SOLVER.WARMUP_ITERS", str(min(50, iters // 4)),
            "SOLVER.CHECKPOINT_PERIOD", str(max(1, iters // checkpoints)), "SEED", str(seed), "OUTPUT_DIR", out]
