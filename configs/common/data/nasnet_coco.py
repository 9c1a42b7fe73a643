# The data as the YAML configs read it: RGB images through our checking mapper, datasets given by
# registered name or by path (voc:ROOT[:SPLIT], coco:IMAGES:JSON, NAME@IDS.txt), COCO box AP.
from omegaconf import OmegaConf

import detectron2.data.transforms as T
from detectron2.config import LazyCall as L
from detectron2.data import build_detection_test_loader, build_detection_train_loader

from nasnet_det.detection.datasets import CheckedDatasetMapper
from nasnet_det.detection.lazy import coco_evaluator, dataset_dicts

dataloader = OmegaConf.create()

dataloader.train = L(build_detection_train_loader)(
    dataset=L(dataset_dicts)(names="coco_2017_train"),
    mapper=L(CheckedDatasetMapper)(
        is_train=True,
        augmentations=[
            L(T.ResizeShortestEdge)(short_edge_length=(640, 672, 704, 736, 768, 800), sample_style="choice",
                                    max_size=1333),
            L(T.RandomFlip)(horizontal=True),
        ],
        image_format="RGB",
    ),
    total_batch_size=16,
    num_workers=4,
)

dataloader.test = L(build_detection_test_loader)(
    dataset=L(dataset_dicts)(names="coco_2017_val", filter_empty=False, classes_from="${...train.dataset.names}"),
    mapper=L(CheckedDatasetMapper)(
        is_train=False,
        augmentations=[L(T.ResizeShortestEdge)(short_edge_length=800, max_size=1333)],
        image_format="${...train.mapper.image_format}",
    ),
    num_workers=4,
)

dataloader.evaluator = L(coco_evaluator)(
    dataset_name="${..test.dataset.names}",
    classes_from="${..train.dataset.names}",
    output_dir="${train.output_dir}",
)
