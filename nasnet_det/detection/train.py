"""Training and evaluation with Detectron2's engine: DefaultTrainer, COCOEvaluator, launch.

The pieces the command line (:mod:`nasnet_det.commands.train_net`, ``tools/train_net.py``) and the
demo put together: config loading, the checking checkpointer, the evaluator and the trainer.
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager, nullcontext
from typing import List, Optional

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode, get_cfg
from detectron2.engine import DefaultTrainer, HookBase
from detectron2.evaluation import COCOEvaluator
from detectron2.data import MetadataCatalog
from detectron2.utils import comm

from .. import genotypes
from ..config_files import get_config_file, list_configs
from ..errors import CheckpointError, ConfigError, one_line
from ..io import torch_save, write_json, write_text
from ..modeling.nasnet import CellRunner, CellStack, NASNet, resolve
from .backbone import nasnet_options
from .config import add_nasnet_config
from .datasets import CheckedDatasetMapper, register_cfg_datasets

logger = logging.getLogger("nasnet_det")

def shipped_configs() -> List[str]:
    return list_configs()


def resolve_config(name: str) -> str:
    """A path, or the name of a shipped config (:mod:`nasnet_det.model_zoo`)."""
    if os.path.isfile(name):
        return name
    if name in list_configs():
        return get_config_file(name)
    raise ConfigError(f"config file not found: {name!r} (not a path, nor a shipped config: "
                      f"{', '.join(shipped_configs())})")


def check_yaml(path: str, chain: tuple = ()) -> None:
    """Read ``path`` and its ``_BASE_`` chain with ``yaml.safe_load``: a tag that builds Python objects
    (``!!python/object/apply``), invalid YAML or a ``_BASE_`` loop is one :class:`ConfigError`."""
    import yaml

    if path in chain:
        raise ConfigError(f"{chain[-1]}: _BASE_ loop through {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.constructor.ConstructorError as e:
        raise ConfigError(f"{path}: refusing a YAML tag that builds Python objects ({e.problem}): a config is "
                          "data (docs/security.md)") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({one_line(e)})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config {path}: {e}") from None
    base = data.get("_BASE_") if isinstance(data, dict) else None
    if isinstance(base, str) and "://" not in base:
        base = os.path.expanduser(base)
        check_yaml(base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base), chain + (path,))


def get_config(config_file: str, opts: Optional[List[str]] = None, register_datasets: bool = True) -> CfgNode:
    """Detectron2 defaults + ``MODEL.NASNET`` keys + the YAML (with its ``_BASE_`` chain) + overrides."""
    path = resolve_config(config_file)
    check_yaml(path)  # before Detectron2 reads it: its loader falls back to yaml.unsafe_load
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


def check_trainable(cfg) -> None:
    """Refuse a training run that cannot work: frozen BatchNorm with no weights to load.

    FrozenBN (and the frozen units of FREEZE_AT) keep the statistics they start with; from random
    initialisation those are meaningless and the loss diverges within a few iterations.
    """
    if cfg.MODEL.WEIGHTS:
        return
    c = cfg.MODEL.NASNET
    frozen = [f"MODEL.NASNET.NORM {c.NORM!r}"] if c.NORM == "FrozenBN" else []
    if c.HEAD_NORM == "FrozenBN" and cfg.MODEL.ROI_HEADS.NAME == "NASNetROIHeads":
        frozen.append(f"MODEL.NASNET.HEAD_NORM {c.HEAD_NORM!r}")
    if c.FREEZE_AT > 0:
        frozen.append(f"MODEL.NASNET.FREEZE_AT {c.FREEZE_AT}")
    if frozen:
        raise ConfigError(f"{' and '.join(frozen)} with MODEL.WEIGHTS '' would train from random, frozen BatchNorm "
                          "statistics and diverge: give MODEL.WEIGHTS (tools/convert_pretrained.py or tools/pretrain.py "
                          "backbone.pth), or train from scratch with a *_scratch.yaml config (NORM BN or SyncBN, "
                          "FREEZE_AT 0)")


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
    genotype, ours = resolve(**nasnet_options(cfg))
    saved_genotype = genotypes.Genotype.from_dict(meta["genotype"], where=path)
    saved = meta["config"]
    # what decides the tensors' names and shapes (not drop path, checkpointing or the classifier)
    keys = ("num_cells", "num_conv_filters", "stem", "stem_multiplier", "skip_reduction_layer_input",
            "reductions_in_num_cells", "filter_scaling_rate", "num_reduction_layers", "in_chans")
    diff = [f"{k} {saved.get(k)!r} vs {getattr(ours, k)!r}" for k in keys if saved.get(k) != getattr(ours, k)]
    if (saved_genotype.normal, saved_genotype.reduction) != (genotype.normal, genotype.reduction):
        diff.insert(0, f"genotype {saved_genotype.name or 'from file'!r} vs {genotype.name!r}")
    if diff:
        raise CheckpointError(f"{path} holds another NASNet than MODEL.NASNET describes "
                              f"(checkpoint vs config): {'; '.join(diff)}")


# A checkpoint that fills less than this share of the NASNet's tensors is another model's.
MIN_FILLED = 0.5


def nasnet_state_keys(model) -> List[str]:
    """The state_dict keys of the NASNet parts of a detector (backbone and second stage)."""
    prefixes = tuple(name + "." for name, m in model.named_modules() if isinstance(m, (NASNet, CellStack)))
    return [k for k in model.state_dict() if k.startswith(prefixes)]


ALLOW_PICKLE = "NASNET_DET_ALLOW_PICKLE"  # "1": .pkl weights are loaded (the tools' --allow-pickle sets it)


class NASNetCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer that refuses weights that would leave the model silently wrong.

    - nasnet_det weights of another genotype or size than the config describes;
    - a file that fills under half of the NASNet's tensors (another model's weights);
    - with ``strict`` (evaluation): any tensor left missing or skipped for its shape, e.g. a box
      predictor trained for another number of classes.

    Saves are atomic (a kill mid-save leaves the previous checkpoint usable), and a file that
    cannot be read is one error naming it.
    """

    def __init__(self, model, save_dir: str = "", *, cfg=None, strict: bool = False, **checkpointables):
        super().__init__(model, save_dir, **checkpointables)
        self.cfg = cfg
        self.strict = strict
        self._source = "checkpoint"

    def load(self, path: str, checkpointables=None):
        self._source = path
        if path and not os.path.isfile(path) and "://" not in path:
            raise CheckpointError(f"checkpoint not found: {path} (MODEL.WEIGHTS or OUTPUT_DIR/last_checkpoint)")
        return super().load(path, checkpointables)

    def _load_file(self, f):
        if f.endswith(".pkl") and os.environ.get(ALLOW_PICKLE) != "1":
            # Detectron2 reads .pkl weights with pickle.load, which runs whatever code the file holds
            raise CheckpointError(f"{f}: refusing a .pkl checkpoint (unpickling runs code it may hold): convert it "
                                  "to .pth, or pass --allow-pickle if you trust the file (docs/security.md)")
        try:
            return super()._load_file(f)
        except Exception as e:  # torch's unpickling advice is for trusted files; this is just not one
            reason = one_line(e).split(". ")[0][:200]
            raise CheckpointError(f"{f} is not a readable checkpoint ({type(e).__name__}: {reason}): expected a "
                                  ".pth/.pkl written by Detectron2, tools/pretrain.py or tools/convert_pretrained.py") from None

    def _load_model(self, checkpoint):
        if not isinstance(checkpoint.get("model"), dict):
            raise CheckpointError(f"{self._source} holds no model weights (a dict under 'model', or a state_dict)")
        if self.cfg is not None and "nasnet" in checkpoint:
            check_weights_fit(checkpoint["nasnet"], self.cfg, self._source)
        incompatible = super()._load_model(checkpoint)
        ours = nasnet_state_keys(self.model)
        missing = set(incompatible.missing_keys) | {k for k, _, _ in incompatible.incorrect_shapes}
        filled = sum(k not in missing for k in ours)
        if ours and filled < MIN_FILLED * len(ours):
            raise CheckpointError(f"{self._source} fills {filled} of the NASNet's {len(ours)} tensors: it holds another "
                                  "model's weights; use a file from tools/convert_pretrained.py, tools/pretrain.py "
                                  "(backbone.pth) or a nasnet_det training run")
        if self.strict and (incompatible.missing_keys or incompatible.incorrect_shapes):
            shapes = [f"{k} {tuple(a)} in the file vs {tuple(b)} in the model" for k, a, b in incompatible.incorrect_shapes]
            hint = (" (a box predictor trained for another number of classes: set MODEL.ROI_HEADS.NUM_CLASSES or "
                    "DATASETS.TRAIN as in training)" if any("box_predictor" in k for k, _, _ in incompatible.incorrect_shapes)
                    else "")
            problems = shapes + [f"{k} missing" for k in incompatible.missing_keys]
            raise CheckpointError(f"{self._source} does not fit the model to evaluate: {'; '.join(problems[:4])}"
                                  f"{' ...' if len(problems) > 4 else ''}{hint}")
        return incompatible

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict(), **{k: v.state_dict() for k, v in self.checkpointables.items()}, **kwargs}
        if self.cfg is not None and self.cfg.DATASETS.TRAIN:  # class names travel with the weights (predict.py)
            names = MetadataCatalog.get(self.cfg.DATASETS.TRAIN[0]).get("thing_classes", None)
            if names:
                data["thing_classes"] = list(names)
        path = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info("Saving checkpoint to %s", path)
        torch_save(data, path)
        self.tag_last_checkpoint(f"{name}.pth")

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        write_text(os.path.join(self.save_dir, "last_checkpoint"), last_filename_basename)


class ImageIdCOCOEvaluator(COCOEvaluator):
    """COCOEvaluator that scores only the dataset's ``eval_image_ids`` (``NAME@IDS.txt`` views).

    A dataset without a COCO JSON of its own (VOC by path, say) is converted to one each time, never
    read from an earlier run's cache: edited annotations must not be scored against old ground truth.
    """

    def __init__(self, dataset_name: str, **kwargs):
        meta = MetadataCatalog.get(dataset_name)
        if meta.get("converted_json_file", None) is not None:  # our conversion of an earlier call
            del meta.json_file, meta.converted_json_file
        converts = meta.get("json_file", None) is None
        super().__init__(dataset_name, allow_cached_coco=False, **kwargs)
        if converts:
            meta.set(converted_json_file=meta.json_file)
        self._eval_image_ids = meta.get("eval_image_ids", None)

    def evaluate(self, img_ids=None):
        return super().evaluate(img_ids if img_ids is not None else self._eval_image_ids)


def _has_compiled_ops() -> bool:
    try:
        from detectron2 import _C  # noqa: F401
        return True
    except ImportError:
        return False


@contextmanager
def _ddp_on_cpu():
    """Detectron2 hands DistributedDataParallel the local rank as a CUDA device id; a module on the
    CPU (several processes over gloo, e.g. CI running the code 8 GPUs would run) takes none."""
    from detectron2.engine import defaults

    original = defaults.create_ddp_model
    defaults.create_ddp_model = lambda model, **kwargs: original(model, **{"device_ids": None, **kwargs})
    try:
        yield
    finally:
        defaults.create_ddp_model = original


class Trainer(DefaultTrainer):
    def __init__(self, cfg):
        check_trainable(cfg)
        with _ddp_on_cpu() if cfg.MODEL.DEVICE == "cpu" and comm.get_world_size() > 1 else nullcontext():
            super().__init__(cfg)

    @classmethod
    def build_train_loader(cls, cfg):
        from detectron2.data import build_detection_train_loader

        return build_detection_train_loader(cfg, mapper=CheckedDatasetMapper(cfg, is_train=True))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        from detectron2.data import build_detection_test_loader

        return build_detection_test_loader(cfg, dataset_name, mapper=CheckedDatasetMapper(cfg, is_train=False))

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
        # loads and the periodic saves both go through the checking, atomic checkpointer
        self.checkpointer = NASNetCheckpointer(self._trainer.model, self.cfg.OUTPUT_DIR, cfg=self.cfg,
                                               **self.checkpointer.checkpointables)
        hooks = super().build_hooks()
        nasnet = self.cfg.MODEL.NASNET
        if nasnet.DROP_PATH_KEEP_PROB < 1.0:
            hooks.insert(0, DropPathSchedule(nasnet.DROP_PATH_SCHEDULE_ITERS or self.cfg.SOLVER.MAX_ITER))
        return hooks


def results_by_dataset(cfg, results) -> dict:
    """{dataset: {"bbox": {...}}}, whether Detectron2 flattened one dataset's results or not."""
    if results and len(cfg.DATASETS.TEST) == 1 and cfg.DATASETS.TEST[0] not in results:
        return {cfg.DATASETS.TEST[0]: results}
    return dict(results or {})


def write_eval_results(cfg, results) -> Optional[str]:
    """``OUTPUT_DIR/eval_results.json``: {dataset: {"bbox": {"AP": ...}}}, written atomically."""
    if not results or not comm.is_main_process():
        return None
    results = results_by_dataset(cfg, results)
    path = os.path.join(cfg.OUTPUT_DIR, "eval_results.json")
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    write_json(path, results)
    logger.info("evaluation results written to %s", path)
    return path
