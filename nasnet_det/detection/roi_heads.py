"""The paper's second stage: the rest of the NASNet run on each ROI crop."""
from __future__ import annotations

from detectron2.modeling import ROI_HEADS_REGISTRY
from detectron2.modeling.roi_heads import Res5ROIHeads

from .backbone import nasnet_options, nasnet_second_stage


@ROI_HEADS_REGISTRY.register()
class NASNetROIHeads(Res5ROIHeads):
    """Res5ROIHeads with NASNet's last stage in res5's place (TF faster_rcnn_nas).

    Each ROI is cropped from the first stage's ``pair16`` map (the previous and current cell
    outputs, concatenated), split back into the two states, and run through the reduction cell
    and the remaining normal cells; ReLU, spatial mean and the box/class layers follow, as in
    Res5ROIHeads. Only these cells are built, and they keep the classification network's names
    (``cells.cell_12...``), so ImageNet weights land here by name.
    """

    @classmethod
    def _build_res5_block(cls, cfg):
        stage = nasnet_second_stage(net=nasnet_options(cfg), norm=cfg.MODEL.NASNET.HEAD_NORM)
        return stage, stage.out_channels
