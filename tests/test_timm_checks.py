"""timm's generic model checks (its tests/test_models.py, reimplemented as timm documents them; nothing
vendored) on our four registered names, beside timm's own NASNet ports where they take part.

The Large networks (88M parameters at 331 px) are marked slow; the closing note of the issue lists the
table for all six names."""
import pytest
import torch

timm = pytest.importorskip("timm")

import nasnet_det.modeling  # noqa: E402,F401  (registers our names)
from timm.models import get_pretrained_cfg_value  # noqa: E402

SMALL = ["nasnet_a_mobile", "nasnet_a_cifar"]
LARGE = ["nasnet_a_large", "pnasnet_5_large"]
OURS = SMALL + [pytest.param(n, marks=[pytest.mark.slow, pytest.mark.large]) for n in LARGE]
# timm's own ports, checked the same way for comparison (slow: each is as large as ours)
THEIRS = [pytest.param(n, marks=[pytest.mark.slow, pytest.mark.large]) for n in ("nasnetalarge", "pnasnet5large")]


def _input(name, batch=1, target=None):
    size = get_pretrained_cfg_value(name, "input_size")
    if target:
        size = (size[0],) + tuple(min(s, target) for s in size[1:])
    return torch.randn(batch, *size)


@pytest.mark.parametrize("name", OURS + THEIRS)
@torch.no_grad()
def test_default_cfgs(name):
    """timm's test_model_default_cfgs: pool_size is the unpooled map, reset_classifier(0) pools,
    reset_classifier(0, '') does not, and the cfg's classifier / first conv name real weights."""
    model = timm.create_model(name, pretrained=False).eval()
    cfg, state = model.pretrained_cfg, model.state_dict()
    x = _input(name)
    features = model.forward_features(x)
    assert tuple(features.shape[-2:]) == tuple(cfg["pool_size"])
    model.reset_classifier(0)
    pooled = model(x)
    assert pooled.ndim == 2 and pooled.shape[-1] == model.num_features
    model.reset_classifier(0, "")
    unpooled = model(x)
    assert unpooled.ndim == 4 and tuple(unpooled.shape[-2:]) == tuple(cfg["pool_size"])
    assert cfg["classifier"] + ".weight" in state and cfg["first_conv"] + ".weight" in state
    # create_model's own arguments mean the same
    again = timm.create_model(name, pretrained=False, num_classes=0, global_pool="").eval()
    assert again(x).ndim == 4


@pytest.mark.parametrize("name", OURS)
def test_global_pool_is_honoured(name):
    model = timm.create_model(name, pretrained=False, global_pool="max").eval()
    x = torch.rand(2, model.num_features, 3, 3)
    assert torch.equal(model.forward_head(x, pre_logits=True), x.amax((2, 3)))
    with pytest.raises(ValueError, match="global_pool must be one of"):
        timm.create_model(name, pretrained=False, global_pool="median")


@pytest.mark.parametrize("name", OURS + THEIRS)
def test_fx_forward_and_backward(name):
    """timm's test_model_forward_fx / test_model_backward_fx: the network traces with torch.fx
    (timm's feature extractor around its last node) and the traced module computes the same."""
    from timm.models._features_fx import create_feature_extractor, get_graph_node_names

    model = timm.create_model(name, pretrained=False, num_classes=7).eval()
    train_nodes, eval_nodes = get_graph_node_names(model)
    traced = create_feature_extractor(model, {eval_nodes[-1]: "out"}).eval()
    x = _input(name, batch=2, target=128)
    with torch.no_grad():
        assert torch.allclose(traced(x)["out"], model(x), atol=1e-5)
    traced.train()
    out = create_feature_extractor(model.train(), {train_nodes[-1]: "out"})(x)["out"]
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", OURS + [pytest.param(p.values[0], marks=[*p.marks, pytest.mark.xfail(
    strict=True, reason="timm's Conv2dSame computes its padding from traced sizes in Python")]) for p in THEIRS])
def test_plain_torch_fx_symbolic_trace(name):
    """Beyond timm's checks: plain ``torch.fx.symbolic_trace`` (no timm leaf modules) traces ours."""
    model = timm.create_model(name, pretrained=False, num_classes=7).eval()
    x = _input(name, batch=2, target=128)
    symbolic = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        assert torch.allclose(symbolic(x), model(x), atol=1e-5)


@pytest.mark.parametrize("name", OURS)
def test_features_only_at_every_index_feature_info_lists(name):
    model = timm.create_model(name, pretrained=False)
    levels = len(model.feature_info)
    x = _input(name, target=96)
    for indices in [None] + [(i,) for i in range(levels)] + [tuple(range(levels))]:
        kwargs = {} if indices is None else {"out_indices": indices}
        features = timm.create_model(name, pretrained=False, features_only=True, **kwargs).eval()
        with torch.no_grad():
            outs = features(x)
        assert [o.shape[1] for o in outs] == features.feature_info.channels()
        assert features.feature_info.reduction() == [model.feature_info[i]["reduction"]
                                                     for i in (indices or range(levels))[-len(outs):]]
    for cls in ("hook", "fx"):  # the other feature wrappers timm offers
        features = timm.create_model(name, pretrained=False, features_only=True, feature_cls=cls).eval()
        with torch.no_grad():
            assert [o.shape[1] for o in features(x)] == features.feature_info.channels()


@pytest.mark.parametrize("name", OURS)
@torch.no_grad()
def test_forward_intermediates_agree_with_forward(name):
    model = timm.create_model(name, pretrained=False).eval()
    x = _input(name, target=96)
    final, intermediates = model.forward_intermediates(x)
    assert torch.allclose(model.forward_head(final), model(x), atol=1e-5)
    assert [t.shape[1] for t in intermediates] == [f["num_chs"] for f in model.feature_info]


@torch.no_grad()
def test_torch_export_with_a_dynamic_height_and_width():
    """One exported program serves any input size (the 'SAME' padding is computed from symbolic sizes,
    no branch on them), odd sizes included, and matches the eager network."""
    from torch.export import Dim, export

    model = timm.create_model("nasnet_a_mobile", pretrained=False, num_classes=10).eval()
    height, width = Dim("height", min=64, max=512), Dim("width", min=64, max=512)  # final map >= 2 px
    program = export(model, (torch.randn(1, 3, 96, 96),), dynamic_shapes={"x": {2: height, 3: width}}).module()
    for size in ((96, 96), (97, 131), (160, 67)):
        x = torch.randn(1, 3, *size)
        assert torch.allclose(program(x), model(x), atol=1e-5), size
