# nasnet_a_large_frcnn.yaml as a LazyConfig: NASNet-A Large (6 @ 4032) Faster R-CNN as in the paper.
#   python tools/convert_pretrained.py nasnetalarge.pth nasnet_a_large_d2.pth
#   python detectron2/tools/lazyconfig_train_net.py --config-file nasnet_a_large_frcnn.py --num-gpus 8 \
#       train.init_checkpoint=nasnet_a_large_d2.pth
# ScheduledDropPath (keep 0.7) needs tools/train_net.py's hook: Detectron2's lazyconfig_train_net.py
# has no slot for it and trains without drop path (docs/detection.md).
from .common.frcnn_recipe import dataloader, lr_multiplier, model, optimizer, train

model.backbone.net.update(genotype="nasnet_a", arch="6@4032", stem_multiplier=3.0, skip_reduction_layer_input=True,
                          drop_path_keep_prob=0.7)
model.backbone.norm = "FrozenBN"
model.backbone.freeze_at = 2  # up to stride 4, as Detectron2's ResNets
train.output_dir = "./output/nasnet_a_large_frcnn"
