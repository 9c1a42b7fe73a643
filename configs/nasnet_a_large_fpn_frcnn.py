# nasnet_a_large_fpn_frcnn.yaml as a LazyConfig: NASNet-A Large (6 @ 4032) + FPN Faster R-CNN, 1x.
# ScheduledDropPath (keep 0.7) needs tools/train_net.py's hook (docs/detection.md).
from .common.fpn_recipe import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.net.update(genotype="nasnet_a", arch="6@4032", stem_multiplier=3.0,
                                    skip_reduction_layer_input=True, drop_path_keep_prob=0.7)
model.backbone.bottom_up.norm = "FrozenBN"
model.backbone.bottom_up.freeze_at = 2
train.output_dir = "./output/nasnet_a_large_fpn_frcnn"
