# Base-NASNet-FRCNN.yaml as a LazyConfig: the paper's layout and the TF Object Detection API's
# recipe (images fitted in 1200 px, 8 images per batch, SGD 0.0024 with gradients clipped at norm 10,
# 180k iterations). A config built on it sets the cell and its size in model.backbone.net.
from detectron2.config import LazyCall as L
from detectron2.data import transforms as T
from detectron2.model_zoo import get_config

from .data.nasnet_coco import dataloader
from .models.nasnet_frcnn import model
from .nasnet_schedule import SGD as optimizer
from .nasnet_schedule import multistep

dataloader.train.mapper.augmentations = [
    # TF resizes to a fixed 1200 x 1200; this keeps the aspect ratio and fits the image in 1200
    L(T.ResizeShortestEdge)(short_edge_length=(1200,), sample_style="choice", max_size=1200),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=1200, max_size=1200)]
dataloader.train.total_batch_size = 8  # TF: batch 1 per replica; here 1 per GPU on 8 GPUs

optimizer.lr = 0.0024  # TF's 3e-4 per image, scaled linearly to 8 images
optimizer.clip_type = "norm"  # TF: gradient_clipping_by_norm 10
optimizer.clip_value = 10.0
lr_multiplier = multistep(max_iter=180000, steps=(120000, 160000), warmup_iters=1000)

train = get_config("common/train.py").train
train.max_iter = 180000
train.checkpointer.period = 10000
train.eval_period = 0  # evaluate once, at the end
