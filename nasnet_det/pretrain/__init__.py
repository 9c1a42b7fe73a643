"""Classification pretraining of NASNets from genotypes, and export to Detectron2."""
from .train import PretrainConfig, evaluate, train

__all__ = ["PretrainConfig", "evaluate", "train"]
