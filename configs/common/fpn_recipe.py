# Base-NASNet-FPN.yaml as a LazyConfig: NASNet taps at strides 4-32 into Detectron2's FPN, with
# Detectron2's 1x recipe (16 images per batch, SGD 0.02, 90k iterations). A config built on it sets
# the cell and its size in model.backbone.bottom_up.net.
from detectron2.model_zoo import get_config

from .data.nasnet_coco import dataloader
from .models.nasnet_fpn import model
from .nasnet_schedule import SGD as optimizer
from .nasnet_schedule import multistep

lr_multiplier = multistep(max_iter=90000, steps=(60000, 80000), warmup_iters=1000)

train = get_config("common/train.py").train
train.max_iter = 90000
train.checkpointer.period = 10000
train.eval_period = 0  # evaluate once, at the end
