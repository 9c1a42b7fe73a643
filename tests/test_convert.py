"""Weight import from timm / Cadene (random weights: nothing is downloaded)."""
import pytest
import torch

import nasnet_det as nd
from nasnet_det.errors import CheckpointError
from nasnet_det.modeling.convert import load_reference_weights

from conftest import randomize_batch_norm

timm = pytest.importorskip("timm")


def _reference(name):
    return randomize_batch_norm(timm.create_model(name, pretrained=False)).eval()


# timm's port counts padded zeros in its stride-2 'SAME' average pools; TF (and Cadene's hard-coded
# pads) do not. Our default is TF's; avg_pool_pad="include" reproduces timm.
@pytest.mark.large
@pytest.mark.parametrize("timm_name, builder", [
    ("nasnetalarge", nd.nasnet_a_large),
    ("pnasnet5large", nd.pnasnet_5_large),
])
def test_logits_equal_timm_at_native_and_other_sizes(timm_name, builder):
    reference = _reference(timm_name)
    ours = builder(num_classes=1000, avg_pool_pad="include").eval()
    load_reference_weights(ours, reference.state_dict())
    for size in [(331, 331), (400, 520)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            expected, got = reference(x), ours(x)
        assert expected.abs().max() > 1e-2  # a comparison of something, not of zeros
        assert (expected - got).abs().max().item() <= 1e-4, size
    if timm_name == "nasnetalarge":  # and the check is sensitive: with TF's padding (our default) the weights differ
        tf_padding = builder(num_classes=1000).eval()
        load_reference_weights(tf_padding, reference.state_dict())
        with torch.no_grad():
            assert (reference(x) - tf_padding(x)).abs().max().item() > 1e-4


@pytest.mark.large
def test_features_equal_timm_features():
    reference = _reference("nasnetalarge")
    ours = nd.nasnet_a_large(avg_pool_pad="include").eval()
    load_reference_weights(ours, reference.state_dict())
    x = torch.randn(1, 3, 331, 331)
    with torch.no_grad():
        expected = reference.forward_intermediates(x, intermediates_only=True)
        got = ours.forward_intermediates(x, intermediates_only=True)
    assert [t.shape for t in expected] == [t.shape for t in got]
    for a, b in zip(expected, got):
        assert (a - b).abs().max().item() <= 1e-4


def test_logits_equal_cadene_nasnet_mobile():
    pretrainedmodels = pytest.importorskip("pretrainedmodels")
    reference = randomize_batch_norm(pretrainedmodels.nasnetamobile(num_classes=1000, pretrained=None)).eval()
    ours = nd.nasnet_a_mobile().eval()  # Cadene's fixed pads reproduce TF's, our default
    load_reference_weights(ours, reference.state_dict())  # cell_6.. / cell_12.. -> cell_4.. / cell_8..
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected, got = reference(x), ours(x)
    assert (expected - got).abs().max().item() <= 1e-4


@pytest.fixture(scope="module")
def mobile_state_dict():
    pretrainedmodels = pytest.importorskip("pretrainedmodels")
    return pretrainedmodels.nasnetamobile(num_classes=1000, pretrained=None).state_dict()


def test_wrong_checkpoints_name_the_keys_and_change_nothing(mobile_state_dict):
    model = nd.nasnet_a_mobile()
    before = {k: v.clone() for k, v in model.state_dict().items()}

    missing = dict(mobile_state_dict)
    del missing["cell_2.comb_iter_1_left.bn_sep_2.weight"]
    with pytest.raises(CheckpointError, match=r"missing keys.*cells\.cell_2\.blocks\.1\.op_a\.layers\.1\.bn\.weight"):
        load_reference_weights(model, missing)

    extra = dict(mobile_state_dict, **{"cell_2.comb_iter_9_left.conv.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"unexpected keys.*cell_2\.comb_iter_9_left\.conv\.weight"):
        load_reference_weights(model, extra)

    with pytest.raises(CheckpointError, match=r"shape mismatch.*last_linear\.weight \(10, 1056\)"):
        load_reference_weights(model, dict(mobile_state_dict, **{"last_linear.weight": torch.zeros(10, 1056)}))

    with pytest.raises(CheckpointError, match="checkpoint has 12 normal cells, model has 18"):
        load_reference_weights(nd.nasnet_a_large(), mobile_state_dict)  # Mobile weights, Large model
    wider = nd.nasnet_a_mobile(num_conv_filters=48)
    with pytest.raises(CheckpointError, match=r"shape mismatch: \(\d+\) cell_stem_0\.conv_1x1\.conv\.weight \(11, 32, 1, 1\) -> "):
        load_reference_weights(wider, mobile_state_dict)

    with pytest.raises(CheckpointError, match="not a state_dict"):
        load_reference_weights(model, {"epoch": 3})

    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_wrapped_checkpoints_load(mobile_state_dict):
    model = nd.nasnet_a_mobile()
    wrapped = {"state_dict": {f"module.{k}": v for k, v in mobile_state_dict.items()}, "epoch": 1}
    load_reference_weights(model, wrapped)
    assert torch.equal(model.classifier.weight, mobile_state_dict["last_linear.weight"])
