# The FPN layout as a LazyConfig (Base-NASNet-FPN.yaml's model): Detectron2's own Mask R-CNN FPN
# model with its ResNet swapped for a NASNet and the mask branch taken off (Faster R-CNN).
from detectron2.config import LazyCall as L
from detectron2.model_zoo import get_config

from nasnet_det.detection.lazy import nasnet_backbone

model = get_config("common/models/mask_rcnn_fpn.py").model
model.backbone.bottom_up = L(nasnet_backbone)(
    # MODEL.NASNET's keys, lower case; the YAML configs' defaults
    net=dict(genotype="nasnet_a", arch="6@4032", stem="imagenet", stem_multiplier=3.0,
             skip_reduction_layer_input=True, reductions_in_num_cells=False, drop_path_keep_prob=1.0,
             avg_pool_pad="exclude", activation_checkpointing=False, in_chans=3),
    out_features=["stride4", "stride8", "stride16", "stride32"],
    norm="BN",
    freeze_at=0,  # MODEL.BACKBONE.FREEZE_AT: the first N units of [stem, cell_stem_0, cell_stem_1, cell_0, ...]
)
model.backbone.in_features = "${.bottom_up.out_features}"
for key in ("mask_in_features", "mask_pooler", "mask_head"):
    del model.roi_heads[key]
# NASNet inputs are scaled to [-1, 1]: (x - 127.5) / 127.5, RGB
model.pixel_mean = [127.5, 127.5, 127.5]
model.pixel_std = [127.5, 127.5, 127.5]
model.input_format = "RGB"
