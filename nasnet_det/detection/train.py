"""Training and evaluation with Detectron2's engine: DefaultTrainer, COCOEvaluator, launch.

``tools/train_net.py`` is the command line; everything it does lives here, where tests reach it.
"""
from __future__ import annotations

import logging
import os
import weakref
from typing import List, Optional

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode, get_cfg
from detectron2.engine import DefaultTrainer, HookBase, default_argument_parser, default_setup
from detectron2.evaluation import COCOEvaluator
from detectron2.data import MetadataCatalog
from detectron2.utils import comm

from .. import genotypes as G
from ..io import write_json
from ..modeling.convert import CheckpointError
from ..modeling.nasnet import CellRunner, parse_arch
from .config import add_nasnet_config
from .datasets import register_cfg_datasets

logger = logging.getLogger("nasnet_det")

CONFIG_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "configs"))


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and key."""


def shipped_configs() -> List[str]:
    return sorted(f for f in os.listdir(CONFIG_DIR) if f.endswith(".yaml")) if os.path.isdir(CONFIG_DIR) else []


def resolve_config(name: str) -> str:
    """A path, or the name of a config shipped in ``configs/``."""
    if os.path.isfile(name):
        return name
    shipped = os.path.join(CONFIG_DIR, name)
    if os.path.isfile(shipped):
        return shipped
    raise ConfigError(f"config file not found: {name!r} (not a path, nor in {CONFIG_DIR}); "
                      f"shipped configs: {', '.join(shipped_configs())}")


def get_config(config_file: str, opts: Optional[List[str]] = None, register_datasets: bool = True) -> CfgNode:
    """Detectron2 defaults + ``MODEL.NASNET`` keys + the YAML (with its ``_BASE_`` chain) + overrides."""
    path = resolve_config(config_file)
    cfg = add_nasnet_config(get_cfg())
    try:
        cfg.merge_from_file(path)
    except KeyError as e:
        raise ConfigError(f"{path}: {e.args[0] if e.args else e} (is it a key of MODEL.NASNET or Detectron2?)") from None
    try:
        cfg.merge_from_list(list(opts or []))
    except (KeyError, AssertionError, ValueError) as e:
        raise ConfigError(f"command-line override: {e}") from None
    if register_datasets:
        register_cfg_datasets(cfg)
    return cfg


class DropPathSchedule(HookBase):
    """ScheduledDropPath: keep probability falls linearly over the first ``total_iters``."""

    def __init__(self, total_iters: int):
        self.total_iters = max(int(total_iters), 1)

    def before_train(self):
        self._runners = [m for m in self.trainer.model.modules() if isinstance(m, CellRunner)]

    def before_step(self):
        progress = self.trainer.iter / self.total_iters
        for runner in self._runners:
            runner.set_drop_path_progress(progress)


def check_weights_fit(meta: dict, cfg, path: str = "MODEL.WEIGHTS") -> None:
    """Refuse NASNet weights of another genotype or size than ``cfg`` builds.

    Detectron2's checkpointer only warns about mis-shaped tensors and skips them; a backbone
    silently left at random init is worse than an error.
    """
    c = cfg.MODEL.NASNET
    genotype = G.get(c.GENOTYPE)
    num_cells, filters = parse_arch(c.ARCH, genotype, c.STEM)
    saved_genotype = G.Genotype.from_dict(meta["genotype"], where=path)
    saved = meta["config"]
    ours = {"num_cells": num_cells, "num_conv_filters": filters, "stem": c.STEM,
            "stem_multiplier": c.STEM_MULTIPLIER, "skip_reduction_layer_input": c.SKIP_REDUCTION_LAYER_INPUT,
            "reductions_in_num_cells": c.REDUCTIONS_IN_NUM_CELLS}
    diff = [f"{k} {saved.get(k)!r} vs {v!r}" for k, v in ours.items() if saved.get(k) != v]
    if (saved_genotype.normal, saved_genotype.reduction) != (genotype.normal, genotype.reduction):
        diff.insert(0, f"genotype {saved_genotype.name or 'from file'!r} vs {genotype.name!r}")
    if diff:
        raise CheckpointError(f"{path} holds another NASNet than MODEL.NASNET describes "
                              f"(checkpoint vs config): {'; '.join(diff)}")


class NASNetCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer that checks nasnet_det weights against the config before loading."""

    def __init__(self, model, save_dir: str = "", *, cfg=None, **checkpointables):
        super().__init__(model, save_dir, **checkpointables)
        self.cfg = cfg

    def _load_model(self, checkpoint):
        if self.cfg is not None and "nasnet" in checkpoint:
            check_weights_fit(checkpoint["nasnet"], self.cfg, self.cfg.MODEL.WEIGHTS or "checkpoint")
        return super()._load_model(checkpoint)


class ImageIdCOCOEvaluator(COCOEvaluator):
    """COCOEvaluator that scores only the dataset's ``eval_image_ids`` (``NAME@IDS.txt`` views)."""

    def __init__(self, dataset_name: str, **kwargs):
        super().__init__(dataset_name, **kwargs)
        self._eval_image_ids = MetadataCatalog.get(dataset_name).get("eval_image_ids", None)

    def evaluate(self, img_ids=None):
        return super().evaluate(img_ids if img_ids is not None else self._eval_image_ids)


def _has_compiled_ops() -> bool:
    try:
        from detectron2 import _C  # noqa: F401
        return True
    except ImportError:
        return False


class Trainer(DefaultTrainer):
    def __init__(self, cfg):
        super().__init__(cfg)
        # loads go through the checking checkpointer (the periodic-save hook keeps the plain one,
        # which saves the same way)
        self.checkpointer = NASNetCheckpointer(self._trainer.model, cfg.OUTPUT_DIR, cfg=cfg,
                                               trainer=weakref.proxy(self))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name.replace("/", "_"))
        return ImageIdCOCOEvaluator(dataset_name, tasks=("bbox",), output_dir=output_folder,
                                    use_fast_impl=_has_compiled_ops())

    def train(self):
        """Train, then return the last evaluation's metrics (Detectron2 returns them only when
        TEST.EXPECTED_RESULTS is set)."""
        results = super().train()
        return results if results is not None else getattr(self, "_last_eval_results", None)

    def build_hooks(self):
        hooks = super().build_hooks()
        nasnet = self.cfg.MODEL.NASNET
        if nasnet.DROP_PATH_KEEP_PROB < 1.0:
            hooks.insert(0, DropPathSchedule(nasnet.DROP_PATH_SCHEDULE_ITERS or self.cfg.SOLVER.MAX_ITER))
        return hooks


def write_eval_results(cfg, results) -> Optional[str]:
    """``OUTPUT_DIR/eval_results.json``: {dataset: {"bbox": {"AP": ...}}}, written atomically."""
    if not results or not comm.is_main_process():
        return None
    if len(cfg.DATASETS.TEST) == 1 and cfg.DATASETS.TEST[0] not in results:
        results = {cfg.DATASETS.TEST[0]: results}  # Detectron2 flattens a single dataset's results
    path = os.path.join(cfg.OUTPUT_DIR, "eval_results.json")
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    write_json(path, results)
    logger.info("evaluation results written to %s", path)
    return path


def argument_parser():
    parser = default_argument_parser()
    parser.add_argument("--config", metavar="NAME",
                        help="a config shipped in configs/ (e.g. nasnet_a_large_frcnn.yaml) or a path")
    return parser


def setup(args) -> CfgNode:
    if args.config and args.config_file:
        raise ConfigError("give --config or --config-file, not both")
    if not (args.config or args.config_file):
        raise ConfigError(f"no config: use --config NAME ({', '.join(shipped_configs())}) or --config-file PATH")
    cfg = get_config(args.config or args.config_file, args.opts)
    cfg.freeze()
    default_setup(cfg, args)  # logging, and OUTPUT_DIR/config.yaml so a run can be reproduced
    return cfg


def main(args):
    """Train (``--resume`` to continue) or evaluate (``--eval-only``); returns the metrics."""
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        NASNetCheckpointer(model, cfg.OUTPUT_DIR, cfg=cfg).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        results = Trainer.test(cfg, model)
    else:
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        results = trainer.train()
    write_eval_results(cfg, results)
    return results
