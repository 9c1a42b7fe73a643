# What the *_scratch configs change (as Detectron2's scratch configs): normalisation that learns its
# statistics (SyncBN; BN on one device), nothing frozen, a 4conv1fc box head, and a 3x schedule.
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec

from .nasnet_schedule import multistep


def from_scratch(model, train):
    """Turn an FPN LazyConfig's ``model`` / ``train`` into the scratch recipe; returns the lr multiplier."""
    model.backbone.bottom_up.norm = "SyncBN"
    model.backbone.bottom_up.freeze_at = 0
    model.backbone.norm = "SyncBN"
    model.roi_heads.box_head.conv_dims = [256, 256, 256, 256]
    model.roi_heads.box_head.fc_dims = [1024]
    model.roi_heads.box_head.conv_norm = "SyncBN"
    model.roi_heads.box_predictor.input_shape = L(ShapeSpec)(channels=1024)
    train.max_iter = 270000
    return multistep(max_iter=270000, steps=(210000, 250000), warmup_iters=1000)
