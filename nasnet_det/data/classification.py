"""Classification datasets by name (:mod:`.specs`), shared by pretraining and the search's child training.

- ``digits``: scikit-learn's 1,797 real handwritten digits (8x8, 10 classes), shipped with the
  package, so training runs anywhere. A fixed stratified 80/20 split; images upsampled to
  ``img_size`` and repeated to three channels.
- ``noisy-digits``: the same split made harder, so that cells of the search space differ in it by
  more than seed noise (the ranking ground truth's task, :mod:`nasnet_det.benchmarks.ground_truth`):
  training images shifted by up to 1/6 of the size and given Gaussian noise (sigma 0.4, in the
  [-1, 1] scale) at every draw; the validation set is four fixed distorted copies of each held-out
  image (1,440 images), the same for every run.
- ``photo-rotation``: a self-supervised task on real photos (rotation prediction, Gidaris et al.
  2018; used to rank DARTS cells by Liu et al., "Are Labels Necessary for Neural Architecture
  Search?", ECCV 2020): random square crops of the 200 raccoon photos shipped with the package,
  each rotated by 0, 90, 180 or 270 degrees, the label being the rotation. Photos 0-159 train
  (a fresh crop, flip and rotation at every draw), photos 160-199 validate (8 fixed crops each,
  every crop in its four rotations: 1,280 images, the same for every run).
- ``cifar10:PATH``: the python-pickle CIFAR-10 folder (``data_batch_1..5``, ``test_batch``). With
  ``holdout`` the paper's split is used: the last 5,000 training images are the validation set.
- ``imagefolder:PATH``: an ImageNet-layout folder, ``PATH/train/<class>/*`` and ``PATH/val/<class>/*``.

Images are scaled to [-1, 1] (mean = std = 0.5, as NASNet's TF preprocessing).
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from ..errors import DataError
from .specs import DatasetSpec, parse_spec, syntaxes

MEAN = STD = (0.5, 0.5, 0.5)


@dataclass
class ClassificationData:
    train: Dataset
    val: Dataset
    num_classes: int
    img_size: int
    name: str


class _Transformed(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Optional[Callable]):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = self.images[i]
        return (self.transform(x) if self.transform else x), self.labels[i]


def _random_shift(pad: int) -> Callable:
    """Pad and randomly crop back: small translations (digits must not be flipped)."""
    def shift(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (pad, pad, pad, pad), value=-1.0)
        top, left = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
        return x[:, top:top + h, left:left + w]
    return shift


def digits(img_size: int = 32, augment: bool = True, seed: int = 0) -> ClassificationData:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0  # 0..16 -> 0..1
    images = F.interpolate(images, size=(img_size, img_size), mode="bilinear", align_corners=False)
    images = ((images - 0.5) / 0.5).repeat(1, 3, 1, 1)
    labels = torch.tensor(bunch.target, dtype=torch.long)
    train_idx, val_idx = train_test_split(np.arange(len(labels)), test_size=0.2, random_state=seed,
                                          stratify=bunch.target)
    train_idx, val_idx = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
    shift = _random_shift(max(1, img_size // 8)) if augment else None
    return ClassificationData(_Transformed(images[train_idx], labels[train_idx], shift),
                              TensorDataset(images[val_idx], labels[val_idx]), 10, img_size, "digits")


NOISE = 0.4  # noisy-digits: the Gaussian noise's standard deviation


def _shift_and_noise(pad: int, noise: float, generator: Optional[torch.Generator] = None) -> Callable:
    def distort(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (pad, pad, pad, pad), value=-1.0)
        top, left = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=generator))
        x = x[:, top:top + h, left:left + w]
        return x + noise * torch.randn(x.shape, generator=generator)
    return distort


def noisy_digits(img_size: int = 12, augment: bool = True, seed: int = 0, copies: int = 4) -> ClassificationData:
    clean = digits(img_size, augment=False, seed=seed)
    pad = max(1, img_size // 6)
    images, labels = clean.train.images, clean.train.labels
    train = _Transformed(images, labels, _shift_and_noise(pad, NOISE) if augment else None)
    x, y = clean.val.tensors
    distort = _shift_and_noise(pad, NOISE, torch.Generator().manual_seed(123))
    val = torch.stack([distort(img) for _ in range(copies) for img in x])
    return ClassificationData(train, TensorDataset(val, y.repeat(copies)), 10, img_size, "noisy-digits")


RACCOON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "raccoon", "images")
PHOTO_SIDE = 48  # photos are scaled to this short side before cropping (a crop holds 1/4-1/2 of the side)


def _photos(side: int = PHOTO_SIDE) -> List[torch.Tensor]:
    from PIL import Image

    names = sorted(f for f in os.listdir(RACCOON) if f.lower().endswith((".jpg", ".jpeg", ".png")))
    photos = []
    for name in names:
        with Image.open(os.path.join(RACCOON, name)) as im:
            im = im.convert("RGB")
            w, h = im.size
            scale = side / min(w, h)
            im = im.resize((max(side, round(w * scale)), max(side, round(h * scale))), Image.BILINEAR)
            x = torch.from_numpy(np.asarray(im, dtype=np.float32).copy()).permute(2, 0, 1) / 255.0
        photos.append((x - 0.5) / 0.5)
    return photos


def _crop(photo: torch.Tensor, img_size: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """A random square crop of 1/4 to 1/2 of the photo's short side, scaled to ``img_size``."""
    h, w = photo.shape[-2:]
    s = int(torch.randint(min(h, w) // 4, min(h, w) // 2 + 1, (1,), generator=generator))
    top = int(torch.randint(0, h - s + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - s + 1, (1,), generator=generator))
    x = photo[:, top:top + s, left:left + s][None]
    return F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)[0]


class _RotatedCrops(Dataset):
    """Training draws: item i is a fresh random crop of photo ``i % len(photos)``, flipped at random
    and rotated by a random multiple of 90 degrees; the label is that multiple."""

    def __init__(self, photos: List[torch.Tensor], img_size: int, length: int):
        self.photos, self.img_size, self.length = photos, img_size, length

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        x = _crop(self.photos[i % len(self.photos)], self.img_size, None)
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        k = int(torch.randint(0, 4, ()))
        return torch.rot90(x, k, (1, 2)), k


def photo_rotation(img_size: int = 16, augment: bool = True, train_photos: int = 160, crops: int = 8,
                   length: int = 2560) -> ClassificationData:
    photos = _photos()
    if len(photos) <= train_photos:
        raise DataError(f"photo-rotation needs more than {train_photos} photos in {RACCOON}, found {len(photos)}")
    g = torch.Generator().manual_seed(123)
    val = [_crop(p, img_size, g) for p in photos[train_photos:] for _ in range(crops)]
    xs = torch.stack([torch.rot90(x, k, (1, 2)) for x in val for k in range(4)])
    ys = torch.arange(4).repeat(len(val))
    train = _RotatedCrops(photos[:train_photos], img_size, length)
    return ClassificationData(train, TensorDataset(xs, ys), 4, img_size, "photo-rotation")


class _CifarUnpickler(pickle.Unpickler):
    """Admits only what CIFAR-10's python batches hold (numpy arrays, and the dicts, lists and
    strings pickle builds without a class): a crafted batch file cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not part of the CIFAR-10 format")


def _unpickle(path: str) -> dict:
    if not os.path.isfile(path):
        inner = os.path.join(os.path.dirname(path), "cifar-10-batches-py")
        hint = f" (the batches are in {inner}: give cifar10:{inner})" if os.path.isdir(inner) else \
            " (give the cifar-10-batches-py folder of the python version of CIFAR-10)"
        raise DataError(f"CIFAR-10 file not found: {path}{hint}")
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, AttributeError, ImportError) as e:
        raise DataError(f"corrupt or foreign CIFAR-10 file {path}: {e}") from None


HOLDOUT_START = 45_000  # the paper's search reward: the last 5,000 training images validate


def cifar10(path: str, img_size: int = 32, augment: bool = True, holdout: bool = True) -> ClassificationData:
    """CIFAR-10; with ``holdout`` (the search's reward) validation = the last 5k training images."""
    if not os.path.isdir(path):
        raise DataError(f"CIFAR-10 folder not found: {path}")

    def load(names: List[str]) -> Tuple[torch.Tensor, torch.Tensor]:
        batches = [_unpickle(os.path.join(path, n)) for n in names]
        for name, b in zip(names, batches):  # CIFAR-10's python format: N x 3072 bytes, N labels
            data, labels = (b.get("data"), b.get("labels")) if isinstance(b, dict) else (None, None)
            if (not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32
                    or labels is None or len(labels) != len(data)):
                raise DataError(f"{os.path.join(path, name)} is not a CIFAR-10 python batch ('data' N x 3072 and N "
                                f"'labels'; got data {getattr(data, 'shape', type(data).__name__)})")
        x = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32)
        y = np.concatenate([b["labels"] for b in batches])
        x = (torch.tensor(x, dtype=torch.float32) / 255.0 - 0.5) / 0.5
        if img_size != 32:
            x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
        return x, torch.tensor(y, dtype=torch.long)

    x, y = load([f"data_batch_{i}" for i in range(1, 6)])
    if holdout:
        if len(x) <= HOLDOUT_START:
            raise DataError(f"{path} holds {len(x):,} training images: the paper's hold-out split validates on images "
                            f"{HOLDOUT_START:,}-50,000, so it needs CIFAR-10's full 50,000 (data_batch_1..5)")
        val = TensorDataset(x[HOLDOUT_START:], y[HOLDOUT_START:])
        x, y = x[:HOLDOUT_START], y[:HOLDOUT_START]
    else:
        val = TensorDataset(*load(["test_batch"]))

    def flip_shift(img, shift=_random_shift(4)):
        img = shift(img)
        return img.flip(-1) if torch.rand(()) < 0.5 else img

    return ClassificationData(_Transformed(x, y, flip_shift if augment else None), val, 10, img_size, f"cifar10:{path}")


def imagefolder(path: str, img_size: int = 224, augment: bool = True) -> ClassificationData:
    """ImageNet layout with Inception-style augmentation (timm's transforms)."""
    from timm.data import create_transform
    from torchvision.datasets import ImageFolder

    for split in ("train", "val"):
        if not os.path.isdir(os.path.join(path, split)):
            raise DataError(f"imagefolder:{path}: missing the {split}/ folder (expected train/<class>/, val/<class>/)")
    train_tf = create_transform(img_size, is_training=augment, interpolation="bicubic", mean=MEAN, std=STD)
    val_tf = create_transform(img_size, is_training=False, interpolation="bicubic", mean=MEAN, std=STD,
                              crop_pct=0.911 if img_size >= 299 else 0.875)
    train = ImageFolder(os.path.join(path, "train"), transform=train_tf)
    val = ImageFolder(os.path.join(path, "val"), transform=val_tf)
    if train.classes != val.classes:
        raise DataError(f"imagefolder:{path}: train/ and val/ have different class folders")
    return ClassificationData(train, val, len(train.classes), img_size, f"imagefolder:{path}")


def check_spec(text: str) -> DatasetSpec:
    """The classification spec ``text`` names, checked without loading it (the search checks its
    spec before handing it to worker processes)."""
    spec = parse_spec(text)
    if spec.task != "classification" or (spec.args and not spec.args[0]):
        what = "a detection dataset" if spec.task == "detection" and spec.kind != "registered" else "unknown dataset"
        raise DataError(f"{what} {text!r}: classification takes {syntaxes('classification')}")
    if spec.args and not os.path.isdir(spec.args[0]):
        raise DataError(f"{spec.kind} folder not found: {spec.args[0]}")
    return spec


def build(text: str, img_size: Optional[int] = None, augment: bool = True, holdout: bool = True) -> ClassificationData:
    """The classification set ``text`` names (a form of :mod:`.specs`), through its form's loader."""
    if img_size is not None and (isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < 1):
        raise DataError(f"image size must be a positive number of pixels, got {img_size!r}")
    spec = parse_spec(text)
    if not (spec.task == "classification" and spec.args and spec.args[0]):  # a folder form reports its own folder
        check_spec(text)  # raises the error that names the problem
    return spec.form.load_function()(spec.args, img_size, augment, holdout)


# the loaders of the classification forms (data/specs.py's FORMS): (args, img_size, augment, holdout)
def digits_form(args, img_size, augment, holdout):
    return digits(img_size or 32, augment)


def noisy_digits_form(args, img_size, augment, holdout):
    return noisy_digits(img_size or 12, augment)


def photo_rotation_form(args, img_size, augment, holdout):
    return photo_rotation(img_size or 16, augment)


def cifar10_form(args, img_size, augment, holdout):
    return cifar10(args[0], img_size or 32, augment, holdout)


def imagefolder_form(args, img_size, augment, holdout):
    return imagefolder(args[0], img_size or 224, augment)
