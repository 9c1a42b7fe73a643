"""Config keys of the NASNet backbones, added to a Detectron2 config node."""
from detectron2.config import CfgNode as CN


def add_nasnet_config(cfg: CN) -> CN:
    """Add ``cfg.MODEL.NASNET.*`` (call before merging a YAML that uses them)."""
    cfg.MODEL.NASNET = CN()
    # A published genotype name (nasnet_a, pnasnet_5, amoebanet_a, darts_v2, ...) or a .json path,
    # e.g. the genotype.json a search wrote.
    cfg.MODEL.NASNET.GENOTYPE = "nasnet_a"
    # The paper's "N@F": N = normal cells per stage, F = penultimate width (6@4032 = Large).
    cfg.MODEL.NASNET.ARCH = "6@4032"
    cfg.MODEL.NASNET.STEM = "imagenet"
    cfg.MODEL.NASNET.STEM_MULTIPLIER = 3.0
    cfg.MODEL.NASNET.SKIP_REDUCTION_LAYER_INPUT = True
    # PNASNet counts its reduction cells in num_cells.
    cfg.MODEL.NASNET.REDUCTIONS_IN_NUM_CELLS = False
    # ScheduledDropPath while training (TF detection: 0.7 for NASNet-A Large); the keep
    # probability falls linearly to this value over DROP_PATH_SCHEDULE_ITERS (0 = SOLVER.MAX_ITER).
    cfg.MODEL.NASNET.DROP_PATH_KEEP_PROB = 1.0
    cfg.MODEL.NASNET.DROP_PATH_SCHEDULE_ITERS = 0
    # "exclude": TF 'SAME' average pooling; "include": timm's port (padded zeros averaged).
    cfg.MODEL.NASNET.AVG_POOL_PAD = "exclude"
    # Recompute each cell in the backward pass (less memory, more compute).
    cfg.MODEL.NASNET.ACTIVATION_CHECKPOINTING = False
    # Freeze the first FREEZE_AT units of [stem, cell_stem_0, cell_stem_1, cell_0, ...]
    # (weights fixed, BN frozen). 2 = stem + cell_stem_0 (stride 4), as Detectron2's ResNets.
    cfg.MODEL.NASNET.FREEZE_AT = 0
    # Normalisation of the backbone and of the second stage: "BN", "FrozenBN" or "SyncBN".
    cfg.MODEL.NASNET.NORM = "BN"
    cfg.MODEL.NASNET.HEAD_NORM = "FrozenBN"
    # Paper layout: the backbone ends at the last stride-16 cell and outputs the
    # (previous, current) state pair as one map, "pair16". FPN layout: taps at strides 4-32.
    cfg.MODEL.NASNET.OUT_FEATURES = ["pair16"]
    return cfg
