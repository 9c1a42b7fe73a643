# nasnet_a_mobile_frcnn.yaml as a LazyConfig: NASNet-A Mobile (4 @ 1056) in the paper's layout
# (first stage to Cell_7, second stage reduction_cell_1 + cells 8-11), 800 px images.
from detectron2.config import LazyCall as L
from detectron2.data import transforms as T

from .common.frcnn_recipe import dataloader, lr_multiplier, model, optimizer, train

model.backbone.net.update(genotype="nasnet_a", arch="4@1056", stem_multiplier=1.0, skip_reduction_layer_input=False,
                          drop_path_keep_prob=1.0)
model.backbone.norm = "FrozenBN"
model.backbone.freeze_at = 2
dataloader.train.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=(800,), sample_style="choice", max_size=1333),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=800, max_size=1333)]
train.output_dir = "./output/nasnet_a_mobile_frcnn"
