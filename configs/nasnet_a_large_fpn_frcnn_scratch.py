# nasnet_a_large_fpn_frcnn_scratch.yaml as a LazyConfig: NASNet-A Large + FPN from scratch (no
# ImageNet weights): SyncBN, nothing frozen, 4conv1fc box head, 3x schedule.
from .common.scratch import from_scratch
from .nasnet_a_large_fpn_frcnn import dataloader, model, optimizer, train

lr_multiplier = from_scratch(model, train)
train.output_dir = "./output/nasnet_a_large_fpn_frcnn_scratch"
