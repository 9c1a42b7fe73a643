"""Detectron2's LazyConfig system and its tools on our networks: every YAML config has a ``.py``
twin that builds the same model and recipe, and Detectron2's lazyconfig_train_net.py train loop,
analyze_model.py and benchmark.py (their calls, as the wheel ships no ``tools/``) run on them."""
import os

import pytest
import torch

pytest.importorskip("detectron2")

from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.config import LazyConfig, instantiate  # noqa: E402
from detectron2.engine import SimpleTrainer, hooks  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.solver import build_lr_scheduler, build_optimizer  # noqa: E402
from detectron2.utils.analysis import FlopCountAnalysis, parameter_count_table  # noqa: E402

from nasnet_det import model_zoo  # noqa: E402
from nasnet_det.detection.config import get_config, shipped_configs  # noqa: E402
from nasnet_det.errors import ConfigError  # noqa: E402

TWINS = [c[:-5] for c in shipped_configs() if not c.startswith("Base-")]
LARGE_SLOW = {"nasnet_a_large_frcnn_tf_minival", "nasnet_a_large_fpn_frcnn", "nasnet_a_large_fpn_frcnn_scratch"}


def _structure(model):
    return {name: (type(module).__name__, tuple(getattr(module, "weight", torch.empty(0)).shape))
            for name, module in model.named_modules()}


def _sizes(augmentations):
    resize = augmentations[0]
    edge = resize.short_edge_length
    return ((edge,) if isinstance(edge, int) else tuple(edge)), resize.max_size


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in LARGE_SLOW else n for n in TWINS])
def test_every_yaml_config_has_a_lazyconfig_twin_with_the_same_model_and_recipe(name):
    yaml = model_zoo.get_config(f"{name}.yaml", ["MODEL.DEVICE", "cpu"])
    lazy = model_zoo.get_config(f"{name}.py")
    ours, theirs = instantiate(lazy.model), build_model(yaml)
    assert _structure(ours) == _structure(theirs)  # every module: name, type and weight shape
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    assert ([n for n, p in ours.named_parameters() if p.requires_grad]
            == [n for n, p in theirs.named_parameters() if p.requires_grad])  # FREEZE_AT alike

    # the optimizer: the same parameter groups and hyper-parameters, gradient clipping included
    lazy.optimizer.params.model = ours
    optimizer, reference = instantiate(lazy.optimizer), build_optimizer(yaml, theirs)
    assert type(optimizer).__name__ == type(reference).__name__
    assert ([(len(g["params"]), g["lr"], g["weight_decay"], g["momentum"]) for g in optimizer.param_groups]
            == [(len(g["params"]), g["lr"], g["weight_decay"], g["momentum"]) for g in reference.param_groups])
    # the schedule: the same multiplier over the whole run, warm-up and steps included
    schedule, max_iter = instantiate(lazy.lr_multiplier), yaml.SOLVER.MAX_ITER
    reference_schedule = build_lr_scheduler(yaml, reference)._multiplier
    points = sorted({0, 1, yaml.SOLVER.WARMUP_ITERS // 2, *yaml.SOLVER.STEPS, max_iter - 1} | {s - 1 for s in yaml.SOLVER.STEPS})
    assert [schedule(i / max_iter) for i in points] == pytest.approx([reference_schedule(i / max_iter) for i in points])
    assert lazy.train.max_iter == max_iter and lazy.train.checkpointer.period == yaml.SOLVER.CHECKPOINT_PERIOD
    assert lazy.train.output_dir == yaml.OUTPUT_DIR
    # the data: image sizes, batch, workers, datasets
    train, test = lazy.dataloader.train, lazy.dataloader.test
    assert _sizes(train.mapper.augmentations) == (tuple(yaml.INPUT.MIN_SIZE_TRAIN), yaml.INPUT.MAX_SIZE_TRAIN)
    assert _sizes(test.mapper.augmentations) == ((yaml.INPUT.MIN_SIZE_TEST,), yaml.INPUT.MAX_SIZE_TEST)
    assert train.total_batch_size == yaml.SOLVER.IMS_PER_BATCH and train.num_workers == yaml.DATALOADER.NUM_WORKERS
    names = train.dataset.names
    assert tuple([names] if isinstance(names, str) else names) == (tuple(yaml.DATASETS.TRAIN) or ("",))


def test_a_lazyconfig_given_to_our_yaml_tools_is_one_line_naming_the_twin():
    with pytest.raises(ConfigError, match=r"LazyConfig \(Python\).*lazyconfig_train_net.*demo_fpn_cpu.yaml"):
        get_config("demo_fpn_cpu.py")


def _tiny(raccoon_voc, out):
    """demo_fpn_cpu.py at the tests' tiny size, on raccoon photos given by path, as overrides."""
    cfg = model_zoo.get_config("demo_fpn_cpu.py", [
        "model.backbone.bottom_up.net.arch=1@192", "model.backbone.out_channels=32",
        "model.proposal_generator.head.in_channels=32", "model.roi_heads.box_head.input_shape.channels=32",
        "model.roi_heads.box_head.fc_dims=[64,64]", "model.roi_heads.box_predictor.input_shape.channels=64",
        "model.roi_heads.num_classes=1", f"dataloader.train.dataset.names=voc:{raccoon_voc}:train",
        f"dataloader.test.dataset.names=voc:{raccoon_voc}:val", f"train.output_dir={out}",
        "train.max_iter=4", "train.checkpointer.period=2", "train.seed=1"])
    cfg.dataloader.test.dataset.names = f"voc:{raccoon_voc}:val@{_first_ids(raccoon_voc, out)}"
    return cfg


def _first_ids(raccoon_voc, out, n=4):
    """An ``@ids`` view of 4 validation images (a faster evaluation, and the ids path form too)."""
    from detectron2.data import DatasetCatalog

    from nasnet_det.detection.datasets import ensure_registered

    ids = [d["image_id"] for d in DatasetCatalog.get(ensure_registered(f"voc:{raccoon_voc}:val",
                                                                       ["raccoon"]))][:n]
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "ids.txt")
    with open(path, "w") as f:
        f.write("\n".join(str(i) for i in ids) + "\n")
    return path


def _do_test(cfg, model):
    from detectron2.evaluation import inference_on_dataset

    return inference_on_dataset(model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator))


def _do_train(cfg, resume):
    """The train loop of Detectron2's tools/lazyconfig_train_net.py (``do_train``), call for call."""
    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    trainer = SimpleTrainer(model, instantiate(cfg.dataloader.train), optimizer)
    checkpointer = DetectionCheckpointer(model, cfg.train.output_dir, optimizer=optimizer, trainer=trainer)
    results = {}
    trainer.register_hooks([
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer),
        hooks.EvalHook(cfg.train.eval_period, lambda: results.update(_do_test(cfg, model)) or results),
    ])
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=resume)
    start_iter = trainer.iter + 1 if resume and checkpointer.has_checkpoint() else 0
    trainer.train(start_iter, cfg.train.max_iter)
    return model, trainer, results


def test_detectron2s_lazyconfig_train_loop_and_tools_run_a_nasnet_on_photos_given_by_path(raccoon_voc, tmp_path):
    out = str(tmp_path / "lazy")
    cfg = _tiny(raccoon_voc, out)
    LazyConfig.save(cfg, os.path.join(out, "config.yaml"))  # as default_setup does: the config serialises
    torch.manual_seed(1)
    model, trainer, results = _do_train(cfg, resume=False)
    losses = [v for v, _ in trainer.storage.history("total_loss").values()]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert {"model_0000001.pth", "model_0000003.pth", "model_final.pth"} <= set(os.listdir(out))
    # evaluated at the end by our evaluator, its files under output_dir/inference/<safe name>
    assert set(results["bbox"]) >= {"AP", "AP50", "AP75"}
    (folder,) = os.listdir(os.path.join(out, "inference"))
    assert folder.startswith("voc_") and "/" not in folder and os.path.isfile(
        os.path.join(out, "inference", folder, "coco_instances_results.json"))

    # resume (lazyconfig_train_net.py --resume): from the last checkpoint, on to the new max_iter
    cfg.train.max_iter = 6
    _, resumed, _ = _do_train(cfg, resume=True)
    assert resumed.iter == 6 and len(resumed.storage.history("total_loss").values()) == 2

    # analyze_model.py --tasks parameter flop structure, and benchmark.py --task eval, on the test loader
    model.eval()
    table = parameter_count_table(model, max_depth=3)
    assert "backbone.bottom_up.net" in table and "roi_heads" in table
    assert "NASNetBackbone" in str(model) and "CellModule" in str(model)
    batch = next(iter(instantiate(cfg.dataloader.test)))
    flops = FlopCountAnalysis(model, batch)
    flops.unsupported_ops_warnings(False)
    assert flops.total() > 0 and flops.by_module()["model.backbone.bottom_up"] > 0
    with torch.no_grad():
        outputs = model(batch)
    assert len(outputs) == len(batch) and all(len(o["instances"]) <= 100 for o in outputs)
