"""The published networks in timm's model registry, so timm's own tools build and wrap them:

    import nasnet_det  # registers nasnet_a_large, nasnet_a_mobile, nasnet_a_cifar, pnasnet_5_large
    model = timm.create_model("nasnet_a_mobile", num_classes=10)
    backbone = timm.create_model("nasnet_a_large", features_only=True, out_indices=(1, 2, 3, 4))

``features_only`` wraps the network in timm's ``FeatureGetterNet`` (our ``forward_intermediates`` and
``prune_intermediate_layers`` follow timm's contract). There are no downloadable weights: convert
timm's ``nasnetalarge`` or Cadene's files with ``nasnet_det.modeling.convert.load_reference_weights``.
"""
from __future__ import annotations

from ..errors import ConfigError
from .nasnet import PUBLISHED, build_nasnet

default_cfgs: dict = {}


def _default_cfg(name: str) -> dict:
    options = PUBLISHED[name].options
    size = options["img_size"]
    return dict(num_classes=options.get("num_classes", 1000), input_size=(3, size, size), pool_size=None,
                crop_pct=0.911 if size == 331 else 0.875, interpolation="bicubic", mean=(0.5, 0.5, 0.5),
                std=(0.5, 0.5, 0.5), first_conv="stem.conv", classifier="classifier")


def _create(name: str, pretrained: bool = False, **kwargs):
    from timm.models import build_model_with_cfg

    if pretrained:
        raise ConfigError(f"timm has no weights for {name}: convert timm's or Cadene's ImageNet weights with "
                          "nasnet_det.modeling.convert.load_reference_weights (tools/convert_pretrained.py)")
    published = PUBLISHED[name]
    # timm's generic arguments, in this network's terms
    for timm_name, ours in (("drop_rate", "dense_dropout_keep_prob"), ("drop_path_rate", "drop_path_keep_prob")):
        if kwargs.get(timm_name) is not None:
            kwargs[ours] = 1.0 - kwargs.pop(timm_name)
        kwargs.pop(timm_name, None)
    kwargs.pop("global_pool", None)  # always average pooling, as released

    def build(**options):
        return build_nasnet(published.genotype, **{**published.options, **options})

    return build_model_with_cfg(build, name, pretrained=False, feature_cfg=dict(feature_cls="getter"), **kwargs)


def register() -> None:
    """Add the published networks to timm's registry (idempotent)."""
    from timm.models import generate_default_cfgs, is_model, register_model

    global default_cfgs  # timm's register_model reads the entrypoint module's default_cfgs
    default_cfgs = generate_default_cfgs({name: _default_cfg(name) for name in PUBLISHED})
    for name in PUBLISHED:
        if is_model(name):
            continue

        def entrypoint(pretrained: bool = False, _name=name, **kwargs):
            return _create(_name, pretrained, **kwargs)

        entrypoint.__name__ = name
        entrypoint.__module__ = __name__
        entrypoint.__doc__ = f"{name}: {PUBLISHED[name].reference} layout, from nasnet_det's genotype interpreter."
        globals()[name] = entrypoint
        register_model(entrypoint)
