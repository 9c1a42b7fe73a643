"""The checking checkpointer: Detectron2's DetectionCheckpointer that refuses weights which would leave
the model silently wrong, refuses pickles unless allowed, and saves atomically."""
from __future__ import annotations

import dataclasses
import os
from typing import List, Optional

import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import MetadataCatalog

from .. import genotypes
from ..errors import CheckpointError, one_line
from ..io import torch_save, write_text
from ..modeling.layout import resolve
from ..modeling.nasnet import CellStack, NASNet
from .backbone import nasnet_options


def check_weights_fit(meta: dict, cfg, path: str = "MODEL.WEIGHTS") -> None:
    """Refuse NASNet weights of another genotype or size than ``cfg`` builds.

    Detectron2's checkpointer only warns about mis-shaped tensors and skips them; a backbone
    silently left at random init is worse than an error.
    """
    genotype, ours = resolve(**nasnet_options(cfg))
    saved_genotype = genotypes.Genotype.from_dict(meta["genotype"], where=path)
    saved = meta["config"]
    # what decides the tensors' names and shapes (not drop path, checkpointing or the classifier)
    keys = ("num_cells", "num_conv_filters", "stem", "stem_multiplier", "skip_reduction_layer_input",
            "reductions_in_num_cells", "filter_scaling_rate", "num_reduction_layers", "in_chans")
    diff = [f"{k} {saved.get(k)!r} vs {getattr(ours, k)!r}" for k in keys if saved.get(k) != getattr(ours, k)]
    if (saved_genotype.normal, saved_genotype.reduction) != (genotype.normal, genotype.reduction):
        diff.insert(0, f"genotype {saved_genotype.name or 'from file'!r} vs {genotype.name!r}")
    if diff:
        raise CheckpointError(f"{path} holds another NASNet than MODEL.NASNET describes "
                              f"(checkpoint vs config): {'; '.join(diff)}")


# A checkpoint that fills less than this share of the NASNet's tensors is another model's.
MIN_FILLED = 0.5


def nasnet_state_keys(model) -> List[str]:
    """The state_dict keys of the NASNet parts of a detector (backbone and second stage)."""
    prefixes = tuple(name + "." for name, m in model.named_modules() if isinstance(m, (NASNet, CellStack)))
    return [k for k in model.state_dict() if k.startswith(prefixes)]


def stored_class_names(path: str) -> Optional[List[str]]:
    """The class names a checkpoint of ours stores beside its weights (``thing_classes``), or None.
    Read with ``weights_only=True`` (no code runs); a file that cannot be read so is left to the
    checkpointer, which names the problem when it loads."""
    if not path or path.endswith(".pkl") or not os.path.isfile(path):
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    names = data.get("thing_classes") if isinstance(data, dict) else None
    return list(names) if isinstance(names, list) and names and all(isinstance(n, str) for n in names) else None


ALLOW_PICKLE = "NASNET_DET_ALLOW_PICKLE"  # "1": .pkl weights are loaded (the tools' --allow-pickle sets it)


class NASNetCheckpointer(DetectionCheckpointer):
    """DetectionCheckpointer that refuses weights that would leave the model silently wrong.

    - nasnet_det weights of another genotype or size than the config describes;
    - a file that fills under half of the NASNet's tensors (another model's weights);
    - with ``strict`` (evaluation): any tensor left missing or skipped for its shape, e.g. a box
      predictor trained for another number of classes.

    Saves are atomic (a kill mid-save leaves the previous checkpoint usable), and a file that
    cannot be read is one error naming it.
    """

    def __init__(self, model, save_dir: str = "", *, cfg=None, strict: bool = False, **checkpointables):
        super().__init__(model, save_dir, **checkpointables)
        self.cfg = cfg
        self.strict = strict
        self._source = "checkpoint"

    def load(self, path: str, checkpointables=None):
        self._source = path
        if path and not os.path.isfile(path) and "://" not in path:
            raise CheckpointError(f"checkpoint not found: {path} (MODEL.WEIGHTS or OUTPUT_DIR/last_checkpoint)")
        return super().load(path, checkpointables)

    def _load_file(self, f):
        if f.endswith(".pkl") and os.environ.get(ALLOW_PICKLE) != "1":
            # Detectron2 reads .pkl weights with pickle.load, which runs whatever code the file holds
            raise CheckpointError(f"{f}: refusing a .pkl checkpoint (unpickling runs code it may hold): convert it "
                                  "to .pth, or pass --allow-pickle if you trust the file (docs/security.md)")
        try:
            return super()._load_file(f)
        except Exception as e:  # torch's unpickling advice is for trusted files; this is just not one
            reason = one_line(e).split(". ")[0][:200]
            raise CheckpointError(f"{f} is not a readable checkpoint ({type(e).__name__}: {reason}): expected a "
                                  ".pth/.pkl written by Detectron2, tools/pretrain.py or tools/convert_pretrained.py") from None

    def _load_model(self, checkpoint):
        if not isinstance(checkpoint.get("model"), dict):
            raise CheckpointError(f"{self._source} holds no model weights (a dict under 'model', or a state_dict)")
        if self.cfg is not None and "nasnet" in checkpoint:
            check_weights_fit(checkpoint["nasnet"], self.cfg, self._source)
        incompatible = super()._load_model(checkpoint)
        ours = nasnet_state_keys(self.model)
        missing = set(incompatible.missing_keys) | {k for k, _, _ in incompatible.incorrect_shapes}
        filled = sum(k not in missing for k in ours)
        if ours and filled < MIN_FILLED * len(ours):
            raise CheckpointError(f"{self._source} fills {filled} of the NASNet's {len(ours)} tensors: it holds another "
                                  "model's weights; use a file from tools/convert_pretrained.py, tools/pretrain.py "
                                  "(backbone.pth) or a nasnet_det training run")
        if self.strict and (incompatible.missing_keys or incompatible.incorrect_shapes):
            shapes = [f"{k} {tuple(a)} in the file vs {tuple(b)} in the model" for k, a, b in incompatible.incorrect_shapes]
            hint = (" (a box predictor trained for another number of classes: set MODEL.ROI_HEADS.NUM_CLASSES or "
                    "DATASETS.TRAIN as in training)" if any("box_predictor" in k for k, _, _ in incompatible.incorrect_shapes)
                    else "")
            problems = shapes + [f"{k} missing" for k in incompatible.missing_keys]
            raise CheckpointError(f"{self._source} does not fit the model to evaluate: {'; '.join(problems[:4])}"
                                  f"{' ...' if len(problems) > 4 else ''}{hint}")
        return incompatible

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict(), **{k: v.state_dict() for k, v in self.checkpointables.items()}, **kwargs}
        if self.cfg is not None and self.cfg.DATASETS.TRAIN:  # class names travel with the weights (predict.py)
            names = MetadataCatalog.get(self.cfg.DATASETS.TRAIN[0]).get("thing_classes", None)
            if names:
                data["thing_classes"] = list(names)
        if self.cfg is not None:  # the NASNet it holds: a --resume or MODEL.WEIGHTS with other settings is named
            genotype, layout = resolve(**nasnet_options(self.cfg))
            data["nasnet"] = {"genotype": genotype.to_dict(), "config": dataclasses.asdict(layout)}
        path = os.path.join(self.save_dir, f"{name}.pth")
        self.logger.info("Saving checkpoint to %s", path)
        torch_save(data, path)
        self.tag_last_checkpoint(f"{name}.pth")

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        write_text(os.path.join(self.save_dir, "last_checkpoint"), last_filename_basename)
