import pytest
import torch

import nasnet_det as nd
from nasnet_det import genotypes
from nasnet_det.modeling import NASNetConfig, build_nasnet, cell_plan, parse_arch
from nasnet_det.modeling.cell import CellModule
from nasnet_det.modeling.complexity import count_mult_adds, count_params
from nasnet_det.modeling.ops import drop_path

from conftest import randomize_batch_norm


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def tiny(genotype="nasnet_a", **kw):
    options = dict(num_cells=3, num_conv_filters=8, num_classes=7, img_size=64)
    options.update(kw)
    return build_nasnet(genotype, **options)


# ------------------------------------------------------------------------------------------------
# Fidelity to the released models (docs/networks.md: the released ports in timm and Cadene)

@pytest.mark.parametrize("builder, expected, tolerance", [
    (nd.nasnet_a_large, 88.753e6, 0.0005),
    (nd.nasnet_a_mobile, 5.290e6, 0.001),
    (nd.nasnet_a_cifar, 3.33e6, 0.01),
    (nd.pnasnet_5_large, 86.06e6, 0.001),
])
def test_parameter_counts(builder, expected, tolerance):
    kwargs = {} if builder is nd.nasnet_a_cifar else {"num_classes": 1000}
    count = n_params(_on_meta(builder, **kwargs))
    assert abs(count - expected) / expected < tolerance, count


def _on_meta(builder, **kwargs):
    """The network built on the meta device: its layout and parameter shapes, without the memory and
    the initialisation of 80M weights."""
    with torch.device("meta"):
        return builder(**kwargs)


@pytest.mark.parametrize("builder, size, expected", [
    pytest.param(nd.nasnet_a_large, 331, 23.78e9, marks=pytest.mark.large),
    (nd.nasnet_a_mobile, 224, 563.6e6),
])
def test_mult_adds(builder, size, expected):
    count = count_mult_adds(builder(), size)
    assert abs(count - expected) / expected < 0.01, count


def test_aux_head_is_optional_and_not_counted():
    plain, with_aux = nd.nasnet_a_mobile(), nd.nasnet_a_mobile(aux_head=True)
    assert n_params(with_aux) > n_params(plain) == count_params(with_aux)
    assert {k for k in with_aux.state_dict() if not k.startswith("aux_head.")} == set(plain.state_dict())


def test_cell_layout_matches_released_graphs():
    large = [s.name for s in cell_plan(NASNetConfig(**{k: v for k, v in nd.modeling.CONFIGS["nasnet_a_large"].items() if k != "genotype"}))]
    assert large[:3] == ["cell_stem_0", "cell_stem_1", "cell_0"]
    assert large.index("reduction_cell_0") == large.index("cell_6") - 1
    assert large.index("reduction_cell_1") == large.index("cell_12") - 1
    model = _on_meta(nd.nasnet_a_large)
    # skip_reduction_layer_input: cell_6 reads reduction_cell_0 and, as previous input, cell_4
    assert model.plan["cell_6"].prev_offset == 3 and model.plan["cell_7"].prev_offset == 2
    assert nd.nasnet_a_mobile().plan["cell_4"].prev_offset == 2
    pnas = _on_meta(nd.pnasnet_5_large)
    assert [n for n in pnas.cell_names if pnas.plan[n].reduction] == ["cell_stem_0", "cell_stem_1", "cell_4", "cell_8"]


def test_arch_strings():
    nasnet_a = genotypes.get("nasnet_a")
    assert parse_arch("6@4032", nasnet_a) == (18, 168)
    assert parse_arch("4 @ 1056", nasnet_a) == (12, 44)
    assert parse_arch("6@768", nasnet_a) == (18, 32)
    with pytest.raises(ValueError, match="not a multiple of 24"):
        parse_arch("5@1538", nasnet_a)
    with pytest.raises(ValueError, match="N@F"):
        parse_arch("large", nasnet_a)
    model = build_nasnet("nasnet_a", arch="4@1056", stem_multiplier=1.0, skip_reduction_layer_input=False)
    assert model.num_features == 1056 and len(model.cell_names) == 2 + 12 + 2
    with pytest.raises(TypeError, match="unknown NASNet options"):
        build_nasnet("nasnet_a", arch="4@1056", num_filters=3)


# ------------------------------------------------------------------------------------------------
# Shapes and taps

@pytest.mark.parametrize("size", [(64, 64), (65, 71), (97, 50), (33, 33)])
def test_any_input_size_and_feature_info(size):
    model = tiny().eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        taps = model.forward_intermediates(x, intermediates_only=True)
        logits = model(x)
    assert logits.shape == (2, 7)
    assert [f["reduction"] for f in model.feature_info] == [2, 4, 8, 16, 32]
    for tap, info in zip(taps, model.feature_info):
        assert tap.shape[1] == info["num_chs"]
        # stride 2 is the VALID conv0, later strides are 'SAME' (ceil) halvings of it
        expected = [(s - 3) // 2 + 1 for s in size]
        for _ in range(info["reduction"].bit_length() - 2):
            expected = [-(-s // 2) for s in expected]
        assert list(tap.shape[-2:]) == expected


def test_intermediates_subset_stops_early_and_matches_features():
    model = tiny().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        last = model.forward_intermediates(x, indices=[4], intermediates_only=True)[0]
        s8, s16 = model.forward_intermediates(x, indices=[2, 3], intermediates_only=True)
        assert torch.equal(last, model.forward_features(x))
        assert s8.shape[1] == model.feature_info[2]["num_chs"] and s16.shape[-1] * 2 == s8.shape[-1]
        # timm's contract: (final features, taps); an int takes the last n taps; stop_early ends at the last tap
        final, taps = model.forward_intermediates(x, indices=2)
        assert torch.equal(final, model.forward_features(x)) and len(taps) == 2 and torch.equal(taps[1], last)
        early, taps = model.forward_intermediates(x, indices=[2], stop_early=True)
        assert torch.equal(early, s8) and torch.equal(taps[0], s8)


def test_cifar_stem_strides():
    model = nd.nasnet_a_cifar(num_cells=6)
    assert [f["reduction"] for f in model.feature_info] == [1, 2, 4]
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def _all_ops_genotype():
    ops = list(genotypes.OPS)
    blocks = []
    for k in range(0, len(ops), 2):  # every op reads a cell input and a block output somewhere
        pair = ops[k:k + 2] + ops[:1] * (2 - len(ops[k:k + 2]))
        blocks.append((0 if k == 0 else 1 + k // 2, 1, pair[0], pair[1]))
    combines = list(genotypes.COMBINES)
    cell = genotypes.Cell(tuple(genotypes.Block(tuple(b[:2]), tuple(b[2:]), combines[i % len(combines)])
                        for i, b in enumerate(blocks)))
    return genotypes.make(normal=cell, reduction=cell, name="all_ops")


@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
def test_every_op_and_combine_builds_trains_and_keeps_shapes(stem):
    genotype = _all_ops_genotype()
    model = build_nasnet(genotype, num_cells=3, num_conv_filters=6, num_classes=5, stem=stem,
                         stem_multiplier=1.0, drop_path_keep_prob=0.8, aux_head=True, img_size=40)
    model.train()
    logits, aux = model(torch.randn(3, 3, 41, 37))
    (logits.sum() + aux.sum()).backward()
    assert logits.shape == aux.shape == (3, 5)
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, unused


def test_unadjusted_first_cell_input_is_concatenated_at_the_right_width():
    # NASNet-A's normal cell concatenates state 1; in the CIFAR stem's first cell that is the raw
    # stem output (3 x F wide), which TF brings to F with a 1x1 conv before the concat.
    model = nd.nasnet_a_cifar(num_cells=3)
    assert "1" in model.cells["cell_0"].concat_adapters
    assert model.cells["cell_0"].out_channels == 6 * 32


# ------------------------------------------------------------------------------------------------
# ScheduledDropPath

def test_drop_path_is_per_example_and_unbiased():
    x = torch.ones(20000, 1, 1, 1)
    y = drop_path(x, torch.tensor(0.7))
    kept = (y > 0).float().mean().item()
    assert abs(kept - 0.7) < 0.02
    assert abs(y.mean().item() - 1.0) < 0.03
    values = torch.unique(y)
    assert len(values) == 2 and values[0] == 0 and values[1] == pytest.approx(1 / 0.7)


def test_drop_path_schedule_and_identity_exclusion():
    identity_cell = genotypes.Cell((genotypes.Block((0, 1), ("identity", "identity")),), concat=(2,))
    conv_cell = genotypes.Cell((genotypes.Block((0, 1), ("sep_conv_3x3", "identity")),), concat=(2,))
    x, prev = torch.randn(8, 4, 6, 6), torch.randn(8, 4, 6, 6)
    ident = CellModule(identity_cell, 4, 4, 4, reduction=False, drop_path_ratio=1.0).eval()
    with torch.no_grad():
        assert torch.equal(ident(x, prev, torch.tensor(0.9)), ident(x, prev, None))
    conv = CellModule(conv_cell, 4, 4, 4, reduction=False, drop_path_ratio=1.0).eval()
    with torch.no_grad():
        plain = conv(x, prev, None)
        dropped = conv(x, prev, torch.tensor(0.9))  # keep = 0.1: most examples lose the conv branch
    changed = [(not torch.allclose(a, b)) for a, b in zip(plain, dropped)]
    assert sum(changed) >= 4

    model = tiny(drop_path_keep_prob=0.5, dense_dropout_keep_prob=1.0).train()
    x = torch.randn(4, 3, 64, 64)
    model.set_drop_path_progress(0.0)  # start of training: keep = 1 everywhere
    torch.manual_seed(1); a = model(x)
    torch.manual_seed(2); b = model(x)
    assert torch.allclose(a, b, atol=1e-6)
    model.set_drop_path_progress(1.0)
    torch.manual_seed(1); c = model(x)
    assert not torch.allclose(a, c, atol=1e-3)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_drop_path_depth_scaling():
    model = _on_meta(nd.nasnet_a_large)
    ratios = [model.cells[n].drop_path_ratio for n in model.cell_names]
    assert ratios[0] == pytest.approx(1 / 22) and ratios[-1] == pytest.approx(1.0)
    assert ratios == sorted(ratios)


# ------------------------------------------------------------------------------------------------
# Memory and compilation

def test_activation_checkpointing_gives_the_same_gradients():
    model = tiny(drop_path_keep_prob=0.7, aux_head=True).train()
    model.set_drop_path_progress(0.5)
    x = torch.randn(2, 3, 64, 64)

    def grads():
        model.zero_grad()
        torch.manual_seed(3)
        logits, aux = model(x)
        (logits.square().sum() + aux.sum()).backward()
        return [p.grad.clone() for p in model.parameters()]

    reference = grads()
    model.set_grad_checkpointing(True)
    for a, b in zip(reference, grads()):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("training", [False, True])
def test_compiles_without_graph_breaks(training):
    model = tiny(drop_path_keep_prob=0.7).train(training)
    x = torch.randn(2, 3, 65, 70)
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    model.eval()
    compiled = torch.compile(model, backend="aot_eager")
    with torch.no_grad():
        assert torch.allclose(compiled(x), model(x), atol=1e-5)


def test_published_networks_are_timm_models_that_timms_wrappers_use():
    import timm
    from timm.models._features import FeatureGetterNet

    assert {"nasnet_a_large", "nasnet_a_mobile", "nasnet_a_cifar", "pnasnet_5_large"} <= set(timm.list_models("*nasnet*"))
    model = timm.create_model("nasnet_a_mobile", num_classes=10, drop_rate=0.3).eval()
    assert isinstance(model, nd.NASNet) and model.cfg.dense_dropout_keep_prob == pytest.approx(0.7)
    assert model.pretrained_cfg["input_size"] == (3, 224, 224) and model.num_classes == 10
    features = timm.create_model("nasnet_a_mobile", features_only=True, out_indices=(1, 2, 3)).eval()
    assert isinstance(features, FeatureGetterNet)
    assert features.feature_info.channels() == [44, 264, 528] and features.feature_info.reduction() == [4, 8, 16]
    # pruned to what the taps need: no cell after the stride-16 tap, no classifier
    assert features.model.cell_names[-1] == features.model.feature_info[3]["cell"]
    assert isinstance(features.model.classifier, torch.nn.Identity)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        full = model.forward_intermediates(x, indices=(1, 2, 3), intermediates_only=True)
        full_state = {k: v for k, v in model.state_dict().items() if k in features.model.state_dict()}
        features.model.load_state_dict(full_state, strict=False)
        got = features(x)
    assert [t.shape for t in got] == [t.shape for t in full]
    assert all(torch.allclose(a, b) for a, b in zip(got, full))


@pytest.mark.parametrize("stem", ["imagenet", "cifar"])
def test_batch_norm_folding_keeps_the_outputs_and_leaves_no_batch_norm(stem):
    import copy

    from nasnet_det.errors import ConfigError
    from nasnet_det.modeling.fuse import fuse_batch_norm

    model = randomize_batch_norm(nd.build_nasnet(_all_ops_genotype(), num_cells=3, num_conv_filters=8, stem=stem,
                                                 num_classes=5)).double().eval()
    with pytest.raises(ConfigError, match="model.eval"):
        fuse_batch_norm(copy.deepcopy(model).train())
    fused = fuse_batch_norm(copy.deepcopy(model))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(2, 3, 37, 45, dtype=torch.float64)
    with torch.no_grad():
        expected, got = model(x), fused(x)
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9 * expected.abs().max().item())
