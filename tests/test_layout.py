"""The design's promises: one op table, slices built alone, one table of published sizes, one
dataset grammar, and a package import that stays light."""
import os
import subprocess
import sys

import pytest
import torch

from nasnet_det import genotypes
from nasnet_det.data.specs import format_spec, parse_spec
from nasnet_det.modeling import PUBLISHED, build_nasnet, cell_plan, format_arch, parse_arch
from nasnet_det.modeling import nasnet as nasnet_module
from nasnet_det.modeling import ops

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


def test_importing_the_package_search_and_modeling_imports_neither_detectron2_nor_ray():
    code = ("import sys, nasnet_det, nasnet_det.modeling, nasnet_det.search.runner, nasnet_det.pretrain; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'detectron2', 'ray'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_op_table_is_the_genotype_vocabulary_and_a_new_op_is_one_line(monkeypatch):
    assert genotypes.OPS == tuple(ops.OPS)
    assert tuple(ops.OPS)[: len(genotypes.PAPER_OPS)] == genotypes.PAPER_OPS
    # the one line a new op takes
    monkeypatch.setitem(ops.OPS, "sep_conv_9x9", lambda c_in, c, stride, pad: ops.SeparableConv(c_in, c, 9, stride))
    g = genotypes.Genotype.from_dict({"normal": [[0, 1, "sep_conv_9x9", "identity"]],
                                      "reduction": [[0, 1, "sep_conv_9x9", "max_pool_3x3"]]})
    net = build_nasnet(g, num_cells=3, num_conv_filters=4, stem="cifar", num_classes=3).eval()
    assert net(torch.randn(1, 3, 16, 16)).shape == (1, 3)
    assert any(m.kernel_size == (9, 9) for m in net.modules() if isinstance(m, torch.nn.Conv2d))


def test_arch_strings_round_trip_for_every_published_network():
    for name, published in PUBLISHED.items():
        genotype = genotypes.get(published.genotype)
        arch = published.arch()
        assert parse_arch(arch, genotype) == (published.options["num_cells"], published.options["num_conv_filters"])
        assert format_arch(genotype, *parse_arch(arch, genotype)) == arch


@pytest.mark.parametrize("config", sorted(f for f in os.listdir(CONFIGS) if f.startswith(("nasnet_a_large", "nasnet_a_mobile"))))
def test_shipped_configs_agree_with_the_published_table(config):
    pytest.importorskip("detectron2")
    from nasnet_det import model_zoo

    nasnet = model_zoo.get_config(config).MODEL.NASNET  # with its _BASE_ chain
    published = PUBLISHED["nasnet_a_large" if config.startswith("nasnet_a_large") else "nasnet_a_mobile"]
    assert nasnet.ARCH == published.arch()
    assert nasnet.STEM_MULTIPLIER == published.options["stem_multiplier"]
    assert nasnet.SKIP_REDUCTION_LAYER_INPUT == published.options["skip_reduction_layer_input"]


def test_the_paper_layout_builds_each_cell_once(monkeypatch):
    pytest.importorskip("detectron2")
    from detectron2.modeling import build_model

    from nasnet_det.detection.train import get_config

    built = []
    original = nasnet_module.build_cell
    monkeypatch.setattr(nasnet_module, "build_cell", lambda spec, *a: built.append(spec.name) or original(spec, *a))
    cfg = get_config("Base-NASNet-FRCNN.yaml", ["MODEL.DEVICE", "cpu", "MODEL.NASNET.ARCH", "2@384",
                                                "MODEL.NASNET.STEM_MULTIPLIER", "1.0", "MODEL.NASNET.HEAD_NORM", "BN"],
                     register_datasets=False)
    model = build_model(cfg)
    genotype, net_cfg = nasnet_module.resolve(genotype="nasnet_a", arch="2@384", stem_multiplier=1.0, num_classes=0)
    assert sorted(built) == sorted(spec.name for spec in cell_plan(net_cfg, genotype))  # each once, none thrown away
    first, second = model.backbone.net, model.roi_heads.res5
    assert set(first.cell_names).isdisjoint(second.cell_names)
    whole = build_nasnet(genotype, num_cells=net_cfg.num_cells, num_conv_filters=net_cfg.num_conv_filters,
                         stem_multiplier=1.0, num_classes=0)
    assert (sum(p.numel() for p in first.parameters()) + sum(p.numel() for p in second.parameters())
            == sum(p.numel() for p in whole.parameters()))


def test_one_dataset_grammar_for_every_stage(tmp_path):
    for kind, args in (("digits", ()), ("cifar10", ("/d/cifar",)), ("imagefolder", ("/d/in",)),
                       ("coco", ("/d/images", "/d/a.json")), ("voc", ("/d/voc", "train")), ("registered", ("coco_2017_val",))):
        text = format_spec(kind, *args)
        spec = parse_spec(text)
        assert (spec.kind, spec.args[: len(args)]) == (kind, args), text
    ids = parse_spec("coco:/d/images:/d/a.json@/d/ids.txt")
    assert ids.kind == "ids" and parse_spec(ids.args[0]).kind == "coco"
    from nasnet_det.data import DataError, build

    with pytest.raises(DataError, match="a detection dataset 'coco:/d/i:/d/a.json': classification takes"):
        build("coco:/d/i:/d/a.json")
