"""Training with Detectron2's engine: DefaultTrainer with our data mapper, evaluator, checkpointer,
an exactly resumable data stream (:mod:`.stream`) and the ScheduledDropPath hook.

Split as Detectron2 splits these: config loading in :mod:`.config`, the checking checkpointer in
:mod:`.checkpoint`, the evaluator in :mod:`.evaluation`; the command line is
:mod:`nasnet_det.commands.train_net` (``tools/train_net.py``).
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager, nullcontext

from detectron2.engine import DefaultTrainer, HookBase
from detectron2.utils import comm

from ..errors import ConfigError, DatasetError, StorageError, UserError, storage_advice, storage_cause
from ..modeling.nasnet import CellRunner
from .checkpoint import NASNetCheckpointer
from .config import check_trainable
from .datasets import CheckedDatasetMapper, require_files
from .evaluation import ImageIdCOCOEvaluator, has_compiled_ops, safe_name
from .stream import GroupedBatches, StepSeeds, StreamState, build_stream_loader

logger = logging.getLogger(__name__)


def _not_a_user_error(record: logging.LogRecord) -> bool:
    """Detectron2's train loop logs every exception with its traceback before re-raising it; a user
    error (an unreadable image met mid-run) then reaches the command as its one line only."""
    return not (record.exc_info and isinstance(record.exc_info[1], UserError))


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


def trainable_dicts(cfg) -> list:
    """The training set's records as Detectron2's loader reads them (``get_detection_dataset_dicts``
    with the config's filters); a set a detector cannot learn from is one line naming it and the
    cause: no images (or ids that match none), or no box that is not crowd / difficult. Detectron2
    would stop on a bare assertion ("Dataset ... is empty!", "No valid data found"), or train on
    nothing when empty images are kept."""
    from detectron2.data import DatasetCatalog, get_detection_dataset_dicts

    names = list(cfg.DATASETS.TRAIN)
    if not names:
        raise DatasetError("DATASETS.TRAIN is empty: name a training set, e.g. DATASETS.TRAIN \"('voc:ROOT:train',)\"")

    def refuse(name, dicts):
        boxes = [a for d in dicts for a in d.get("annotations", [])]
        if not dicts:
            raise DatasetError(f"training set {name} has no images (an empty set, or image ids that match none): "
                               f"check it with nasnet-det check-dataset {name}")
        if not any(not a.get("iscrowd", 0) for a in boxes):
            raise DatasetError(f"training set {name}: {len(dicts)} images, {len(boxes)} boxes, and no box that is not "
                               "crowd / difficult: a detector has nothing to learn from (nasnet-det check-dataset "
                               f"{name} reports each problem)")

    for name in names:
        require_files(name)
    try:
        dicts = get_detection_dataset_dicts(
            names, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
            min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0,
            proposal_files=cfg.DATASETS.PROPOSAL_FILES_TRAIN if cfg.MODEL.LOAD_PROPOSALS else None)
    except AssertionError:  # Detectron2's "is empty!" / "No valid data found": say which set and why
        for name in names:
            refuse(name, DatasetCatalog.get(name))
        raise
    refuse(" + ".join(names), dicts)  # empty images kept (FILTER_EMPTY_ANNOTATIONS False): still no box to learn
    return dicts


class Trainer(DefaultTrainer):
    def __init__(self, cfg):
        check_trainable(cfg)
        with _ddp_on_cpu() if cfg.MODEL.DEVICE == "cpu" and comm.get_world_size() > 1 else nullcontext():
            super().__init__(cfg)

    @classmethod
    def build_train_loader(cls, cfg):
        """Detectron2's training data, as a stream that resumes exactly (:mod:`.stream`) where the
        sampler is Detectron2's default (TrainingSampler); another sampler is Detectron2's loader."""
        from detectron2.data import build_detection_train_loader

        dicts = trainable_dicts(cfg)
        mapper = CheckedDatasetMapper(cfg, is_train=True)
        if cfg.DATALOADER.SAMPLER_TRAIN != "TrainingSampler":
            logger.warning("DATALOADER.SAMPLER_TRAIN %s: Detectron2's loader, whose data order a --resume does not "
                           "continue exactly (TrainingSampler does)", cfg.DATALOADER.SAMPLER_TRAIN)
            return build_detection_train_loader(cfg, mapper=mapper, dataset=dicts)
        world = comm.get_world_size()
        if cfg.SOLVER.IMS_PER_BATCH % world or cfg.SOLVER.IMS_PER_BATCH < world:
            raise ConfigError(f"SOLVER.IMS_PER_BATCH {cfg.SOLVER.IMS_PER_BATCH} is the total batch of {world} "
                              f"processes: give a multiple of {world}")
        seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
        return build_stream_loader(dicts, mapper, seed, cfg.SOLVER.IMS_PER_BATCH // world,
                                   cfg.DATALOADER.ASPECT_RATIO_GROUPING, cfg.DATALOADER.NUM_WORKERS)

    def resume_or_load(self, resume=True):
        """Detectron2's, and the data stream continues at the resumed iteration (its seed comes
        from the checkpoint): kill -9 + --resume trains as the uninterrupted run."""
        super().resume_or_load(resume=resume)
        sampler = getattr(self._trainer.data_loader, "batch_sampler", None)
        if isinstance(sampler, GroupedBatches):
            sampler.start = self.start_iter

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        from detectron2.data import build_detection_test_loader

        return build_detection_test_loader(cfg, require_files(dataset_name), mapper=CheckedDatasetMapper(cfg, is_train=False))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", safe_name(dataset_name))
        return ImageIdCOCOEvaluator(dataset_name, tasks=("bbox",), output_dir=output_folder,
                                    use_fast_impl=has_compiled_ops())

    def train(self):
        """Train, then return the last evaluation's metrics (Detectron2 returns them only when
        TEST.EXPECTED_RESULTS is set)."""
        logging.getLogger("detectron2.engine.train_loop").addFilter(_not_a_user_error)  # once: a set of filters
        try:
            results = super().train()
        except OSError as e:  # the after-train hooks write too; a full disk then fails them as well
            if isinstance(e.__context__, UserError):
                raise e.__context__ from None  # the first refusal (a checkpoint that did not fit) names the file
            cause = storage_cause(e)
            if cause is None:
                raise
            raise StorageError(f"cannot write in {self.cfg.OUTPUT_DIR}: {cause}; {storage_advice(e)}, then run the "
                               "same command again with --resume") from None
        return results if results is not None else getattr(self, "_last_eval_results", None)

    def build_hooks(self):
        # loads and the periodic saves both go through the checking, atomic checkpointer
        stream = None
        if isinstance(getattr(self._trainer.data_loader, "batch_sampler", None), GroupedBatches):
            stream = StreamState(self._trainer.data_loader)  # the stream's seed travels in each checkpoint
        self.checkpointer = NASNetCheckpointer(self._trainer.model, self.cfg.OUTPUT_DIR, cfg=self.cfg,
                                               **self.checkpointer.checkpointables,
                                               **({"data_stream": stream} if stream is not None else {}))
        hooks = super().build_hooks()
        if stream is not None:
            hooks.insert(0, StepSeeds(stream))  # every step's draws from (seed, iteration, rank)
        nasnet = self.cfg.MODEL.NASNET
        if nasnet.DROP_PATH_KEEP_PROB < 1.0:
            hooks.insert(0, DropPathSchedule(nasnet.DROP_PATH_SCHEDULE_ITERS or self.cfg.SOLVER.MAX_ITER))
        return hooks


