# nasnet_a_large_frcnn_tf_minival.yaml as a LazyConfig: the paper's split (TF Object Detection API),
# trained on COCO 2014 train + val minus TF's minival, evaluated on TF's 8,059-image minival.
from .nasnet_a_large_frcnn import dataloader, lr_multiplier, model, optimizer, train

dataloader.train.dataset.names = ("coco_2014_train", "coco_2014_valminusminival_tf")
dataloader.test.dataset.names = "coco_2014_minival_tf"
train.output_dir = "./output/nasnet_a_large_frcnn_tf_minival"
