# The paper's detection layout as a LazyConfig (Base-NASNet-FRCNN.yaml's model; TF Object Detection
# API, faster_rcnn_nas_coco.config): NASNet up to the last stride-16 cell, whose last two outputs
# ("pair16") feed the RPN; the rest of the NASNet runs on each 17x17 ROI crop (NASNetROIHeads).
# The cells' settings live once, in model.backbone.net; the second stage and the heads' channel
# counts read them from there.
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import DefaultAnchorGenerator
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.meta_arch import GeneralizedRCNN
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.proposal_generator import RPN, StandardRPNHead
from detectron2.modeling.roi_heads import FastRCNNOutputLayers

from nasnet_det.detection.lazy import nasnet_backbone, nasnet_second_stage, nasnet_width, pair_channels
from nasnet_det.detection.roi_heads import NASNetROIHeads

model = L(GeneralizedRCNN)(
    backbone=L(nasnet_backbone)(
        # MODEL.NASNET's keys, lower case; the YAML configs' defaults
        net=dict(genotype="nasnet_a", arch="6@4032", stem="imagenet", stem_multiplier=3.0,
                 skip_reduction_layer_input=True, reductions_in_num_cells=False, drop_path_keep_prob=1.0,
                 avg_pool_pad="exclude", activation_checkpointing=False, in_chans=3),
        out_features=["pair16"],
        norm="BN",
        freeze_at=0,  # MODEL.BACKBONE.FREEZE_AT: the first N units of [stem, cell_stem_0, ...]
    ),
    proposal_generator=L(RPN)(
        in_features=["pair16"],
        head=L(StandardRPNHead)(in_channels=L(pair_channels)(net="${....backbone.net}"), num_anchors=12),
        anchor_generator=L(DefaultAnchorGenerator)(  # 12 anchors per location, stride 16
            sizes=[[64, 128, 256, 512]], aspect_ratios=[0.5, 1.0, 2.0], strides=[16], offset=0.0),
        anchor_matcher=L(Matcher)(thresholds=[0.3, 0.7], labels=[0, -1, 1], allow_low_quality_matches=True),
        box2box_transform=L(Box2BoxTransform)(weights=[1.0, 1.0, 1.0, 1.0]),
        batch_size_per_image=256,
        positive_fraction=0.5,
        pre_nms_topk=(12000, 6000),
        post_nms_topk=(500, 500),  # TF: first_stage_max_proposals 500
        nms_thresh=0.7,
    ),
    roi_heads=L(NASNetROIHeads)(
        num_classes=80,
        batch_size_per_image=64,  # TF: second_stage_batch_size 64
        positive_fraction=0.25,
        proposal_matcher=L(Matcher)(thresholds=[0.5], labels=[0, 1], allow_low_quality_matches=False),
        in_features=["pair16"],
        pooler=L(ROIPooler)(output_size=17, scales=(1.0 / 16,), sampling_ratio=0, pooler_type="ROIAlignV2"),
        res5=L(nasnet_second_stage)(net="${...backbone.net}", norm="FrozenBN"),  # MODEL.NASNET.HEAD_NORM
        box_predictor=L(FastRCNNOutputLayers)(
            input_shape=L(ShapeSpec)(channels=L(nasnet_width)(net="${.....backbone.net}"), height=1, width=1),
            test_score_thresh=0.05,
            test_topk_per_image=100,
            box2box_transform=L(Box2BoxTransform)(weights=(10, 10, 5, 5)),
            num_classes="${..num_classes}",
        ),
    ),
    pixel_mean=[127.5, 127.5, 127.5],  # NASNet inputs are scaled to [-1, 1], RGB
    pixel_std=[127.5, 127.5, 127.5],
    input_format="RGB",
)
