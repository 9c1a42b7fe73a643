# nasnet_a_mobile_fpn_frcnn_scratch.yaml as a LazyConfig: NASNet-A Mobile + FPN from scratch, e.g. a
# searched cell (model.backbone.bottom_up.net.genotype=runs/search/genotype.json) before pretraining.
from .common.scratch import from_scratch
from .nasnet_a_mobile_fpn_frcnn import dataloader, model, optimizer, train

lr_multiplier = from_scratch(model, train)
train.output_dir = "./output/nasnet_a_mobile_fpn_frcnn_scratch"
