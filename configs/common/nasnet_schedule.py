# The optimizer and the learning-rate multipliers of the YAML configs (SOLVER.*), as LazyConfig parts.
from fvcore.common.param_scheduler import MultiStepParamScheduler

from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from detectron2.solver.build import get_default_optimizer_params

from nasnet_det.detection.lazy import sgd

# SOLVER.BASE_LR / MOMENTUM / WEIGHT_DECAY (no decay on norm layers, as Detectron2's default);
# clip_type "norm" / "value" is SOLVER.CLIP_GRADIENTS
SGD = L(sgd)(params=L(get_default_optimizer_params)(weight_decay_norm=0.0), lr=0.02, momentum=0.9,
             weight_decay=1e-4)


def multistep(max_iter, steps, warmup_iters=1000, warmup_factor=0.001):
    """SOLVER.MAX_ITER / STEPS / WARMUP_ITERS (linear warm-up, x0.1 at each step) as a multiplier."""
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(values=[0.1 ** i for i in range(len(steps) + 1)],
                                             milestones=list(steps) + [max_iter]),
        warmup_length=warmup_iters / max_iter,
        warmup_method="linear",
        warmup_factor=warmup_factor,
    )
