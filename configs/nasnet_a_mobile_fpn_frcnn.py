# nasnet_a_mobile_fpn_frcnn.yaml as a LazyConfig: NASNet-A Mobile (4 @ 1056) + FPN Faster R-CNN, 1x.
from .common.fpn_recipe import dataloader, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.net.update(genotype="nasnet_a", arch="4@1056", stem_multiplier=1.0,
                                    skip_reduction_layer_input=False)
model.backbone.bottom_up.norm = "FrozenBN"
model.backbone.bottom_up.freeze_at = 2
train.output_dir = "./output/nasnet_a_mobile_fpn_frcnn"
