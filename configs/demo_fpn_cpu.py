# demo_fpn_cpu.yaml as a LazyConfig: the demo's Faster R-CNN FPN around a small NASNet, sized for a
# 2-core CPU, e.g. on the raccoon photos with a searched cell and its pretrained weights:
#   python detectron2/tools/lazyconfig_train_net.py --config-file demo_fpn_cpu.py \
#       model.backbone.bottom_up.net.genotype=runs/demo/genotype.json model.backbone.bottom_up.net.arch=1@192 \
#       train.init_checkpoint=runs/demo/pretrain/backbone.pth model.roi_heads.num_classes=1 \
#       dataloader.train.dataset.names=voc:runs/demo/raccoon_voc:train dataloader.test.dataset.names=voc:runs/demo/raccoon_voc:val
from detectron2.config import LazyCall as L
from detectron2.data import transforms as T
from detectron2.layers import ShapeSpec

from .common.fpn_recipe import dataloader, model, optimizer, train
from .common.nasnet_schedule import multistep

model.backbone.bottom_up.net.update(stem_multiplier=1.0, skip_reduction_layer_input=False)
model.backbone.bottom_up.norm = "BN"
model.backbone.out_channels = 64
model.proposal_generator.head.in_channels = 64
model.proposal_generator.anchor_generator.sizes = [[16], [32], [64], [128], [256]]
# CPU time goes to RoIAlign's backward and the RPN's NMS, not to the small backbone: fewer sampled
# RoIs, a fixed sampling ratio and a shorter NMS list make an iteration 30% faster
model.proposal_generator.pre_nms_topk = (600, 300)
model.proposal_generator.post_nms_topk = (300, 100)
model.roi_heads.batch_size_per_image = 64
model.roi_heads.box_pooler.sampling_ratio = 2
model.roi_heads.box_head.input_shape = ShapeSpec(channels=64, height=7, width=7)
model.roi_heads.box_head.fc_dims = [256, 256]
model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=256)

dataloader.train.dataset.names = ""  # a dataset to set, as the YAML's DATASETS.TRAIN ()
dataloader.test.dataset.names = ""
dataloader.train.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=(128,), sample_style="choice", max_size=128),
    L(T.RandomFlip)(horizontal=True),
]
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=128, max_size=128)]
dataloader.train.total_batch_size = 4
dataloader.train.num_workers = 0
dataloader.test.num_workers = 0

optimizer.lr = 0.02
lr_multiplier = multistep(max_iter=1000, steps=(800,), warmup_iters=50)
train.max_iter = 1000
train.checkpointer.period = 200
train.device = "cpu"
train.output_dir = "./output/demo_fpn_cpu"
