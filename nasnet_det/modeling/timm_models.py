"""The published networks (the model zoo's one table of sizes) and their place in timm's model
registry, as timm's own model files keep them: the table, one ``pretrained_cfg`` per name, the
named builders, and the registration at the bottom.

    import nasnet_det.modeling  # registers nasnet_a_large, nasnet_a_mobile, nasnet_a_cifar, pnasnet_5_large
    model = timm.create_model("nasnet_a_mobile", num_classes=10)
    backbone = timm.create_model("nasnet_a_large", features_only=True, out_indices=(1, 2, 3, 4))

``features_only`` wraps the network in timm's ``FeatureGetterNet`` (our ``forward_intermediates`` and
``prune_intermediate_layers`` follow timm's contract). There are no downloadable weights: convert
timm's ``nasnetalarge`` or Cadene's files with ``nasnet_det.modeling.convert.load_reference_weights``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from .. import genotypes
from ..errors import ConfigError
from .layout import cell_plan, feature_taps, format_arch, pretrained_cfg, resolve
from .nasnet import NASNet, build_nasnet


@dataclass(frozen=True)
class Published:
    """A released configuration and what the released model measures (ports on CPU)."""

    genotype: str
    options: dict  # NASNetConfig fields (TF nasnet.py / pnasnet.py hparams)
    params: float  # parameters of the released model with its classifier
    mult_adds: Optional[float]  # conv + final linear, at options["img_size"]
    reference: str

    def arch(self) -> str:
        return format_arch(genotypes.get(self.genotype), self.options["num_cells"], self.options["num_conv_filters"])


# The one table of published sizes: the builders, the model table, the weight converter and the
# config tests read it.
PUBLISHED: Dict[str, Published] = {
    "nasnet_a_large": Published("nasnet_a", dict(num_cells=18, num_conv_filters=168, stem_multiplier=3.0,
                                                 drop_path_keep_prob=0.7, dense_dropout_keep_prob=0.5,
                                                 skip_reduction_layer_input=True, img_size=331),
                                88.753e6, 23.783e9, "timm nasnetalarge (TF weights)"),
    "nasnet_a_mobile": Published("nasnet_a", dict(num_cells=12, num_conv_filters=44, stem_multiplier=1.0,
                                                  drop_path_keep_prob=1.0, dense_dropout_keep_prob=0.5,
                                                  skip_reduction_layer_input=False, img_size=224),
                                 5.290e6, 563.6e6, "Cadene nasnetamobile (TF weights)"),
    "nasnet_a_cifar": Published("nasnet_a", dict(num_cells=18, num_conv_filters=32, stem_multiplier=3.0, stem="cifar",
                                                 drop_path_keep_prob=0.6, dense_dropout_keep_prob=1.0,
                                                 skip_reduction_layer_input=False, img_size=32, num_classes=10),
                                3.33e6, None, "paper, table 1"),
    "pnasnet_5_large": Published("pnasnet_5", dict(num_cells=12, num_conv_filters=216, stem_multiplier=3.0,
                                                   drop_path_keep_prob=0.6, dense_dropout_keep_prob=0.5,
                                                   skip_reduction_layer_input=True, reductions_in_num_cells=True,
                                                   img_size=331),
                                 86.06e6, 24.94e9, "timm pnasnet5large (TF weights)"),
}
CONFIGS = {name: dict(genotype=p.genotype, **p.options) for name, p in PUBLISHED.items()}


def penultimate_width(name: str) -> int:
    """The classifier's input width of a published network (how the converter recognises one)."""
    p = PUBLISHED[name]
    genotype, cfg = resolve(p.genotype, **p.options)
    return cell_plan(cfg, genotype)[-1].out_channels


def default_cfg(name: str) -> dict:
    """The ``pretrained_cfg`` timm's registry holds for ``name`` (the same one the network carries)."""
    p = PUBLISHED[name]
    genotype, cfg = resolve(p.genotype, **p.options)
    return pretrained_cfg(cfg)


def _builder(name: str):
    def build(num_classes: Optional[int] = None, aux_head: bool = False, **overrides) -> NASNet:
        options = dict(CONFIGS[name])
        genotype = options.pop("genotype")
        if num_classes is not None:
            options["num_classes"] = num_classes
        options.update(aux_head=aux_head, **overrides)
        return build_nasnet(genotype, **options)

    build.__name__ = name
    build.__doc__ = f"{name}: {CONFIGS[name]} (aux head off by default, as the paper counts parameters)."
    return build


nasnet_a_large = _builder("nasnet_a_large")
nasnet_a_mobile = _builder("nasnet_a_mobile")
nasnet_a_cifar = _builder("nasnet_a_cifar")
pnasnet_5_large = _builder("pnasnet_5_large")


# ------------------------------------------------------------------------------------------------
# timm's registry

default_cfgs: dict = {}


def _create(name: str, pretrained: bool = False, **kwargs) -> NASNet:
    from timm.models import build_model_with_cfg

    if pretrained:
        raise ConfigError(f"timm has no weights for {name}: convert timm's or Cadene's ImageNet weights with "
                          "nasnet_det.modeling.convert.load_reference_weights (tools/convert_pretrained.py)")
    published = PUBLISHED[name]
    # timm's generic arguments, in this network's terms
    for timm_name, ours in (("drop_rate", "dense_dropout_keep_prob"), ("drop_path_rate", "drop_path_keep_prob")):
        value = kwargs.pop(timm_name, None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ConfigError(f"{timm_name} must be a number in [0, 1), got {value!r} (timm's argument; the network "
                              f"keeps {ours} = 1 - {timm_name})")
        kwargs[ours] = 1.0 - value

    def build(**options):
        return build_nasnet(published.genotype, **{**published.options, **options})

    # features_only without out_indices: every level the network has (the CIFAR stem has 3, not timm's 5)
    genotype, cfg = resolve(published.genotype, **published.options)
    levels = len(feature_taps(cell_plan(cfg, genotype), cfg))
    return build_model_with_cfg(build, name, pretrained=False,
                                feature_cfg=dict(feature_cls="getter", out_indices=tuple(range(levels))), **kwargs)


def register() -> None:
    """Add the published networks to timm's registry (idempotent)."""
    from timm.models import generate_default_cfgs, is_model, register_model

    global default_cfgs  # timm's register_model reads the entrypoint module's default_cfgs
    default_cfgs = generate_default_cfgs({name: default_cfg(name) for name in PUBLISHED})
    for name in PUBLISHED:
        if is_model(name):
            continue

        def entrypoint(pretrained: bool = False, _name=name, **kwargs):
            return _create(_name, pretrained, **kwargs)

        entrypoint.__name__ = name
        entrypoint.__module__ = __name__
        entrypoint.__doc__ = f"{name}: {PUBLISHED[name].reference} layout, from nasnet_det's genotype interpreter."
        register_model(entrypoint)
