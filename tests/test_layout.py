"""The design's promises: one op table, slices built alone, one table of published sizes, one
dataset grammar, and a package import that stays light."""
import os
import re
import subprocess
import sys

import pytest
import torch

from nasnet_det import genotypes
from nasnet_det.data.specs import format_spec, parse_spec
from nasnet_det.modeling import PUBLISHED, build_nasnet, cell_plan, format_arch, parse_arch, resolve
from nasnet_det.modeling import nasnet as nasnet_module
from nasnet_det.modeling import ops

CONFIGS = os.path.join(os.path.dirname(__file__), "..", "configs")


def _python(code: str) -> str:
    """What ``code`` prints in a fresh interpreter (which imports only what the code does)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _imported_after(statement: str, packages) -> str:
    return _python(f"import sys; {statement}; print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(packages)!r}))")


def test_importing_the_package_search_and_modeling_imports_neither_detectron2_nor_ray():
    assert _imported_after("import nasnet_det, nasnet_det.modeling, nasnet_det.search.runner, nasnet_det.pretrain",
                           {"detectron2", "ray"}) == "[]"


@pytest.mark.parametrize("order", ["import timm, nasnet_det", "import nasnet_det, timm"])
def test_timms_idiom_works_in_either_import_order(order):
    # the timm idiom wins over a torch-free `import nasnet_det` (docs/design.md, "Kept on purpose"); the
    # data layer's own modules still import no torch: the floors test above reads their imports
    code = f"{order}; m = timm.create_model('nasnet_a_mobile', num_classes=10); print(type(m).__name__, m.num_classes)"
    assert _python(code) == "NASNet 10"


def test_the_op_table_is_the_genotype_vocabulary_and_a_new_op_is_one_call():
    assert ops.OPS is genotypes.OPS and genotypes.op_names()[: len(genotypes.PAPER_OPS)] == genotypes.PAPER_OPS
    assert all(ops.OPS.get(name) is ops.BUILTIN_OPS[name] for name in ops.BUILTIN_OPS)
    # the one call a new op takes
    ops.register_op("sep_conv_9x9", lambda c_in, c, stride, pad: ops.SeparableConv(c_in, c, 9, stride))
    try:
        g = genotypes.Genotype.from_dict({"normal": [[0, 1, "sep_conv_9x9", "identity"]],
                                          "reduction": [[0, 1, "sep_conv_9x9", "max_pool_3x3"]]})
        net = build_nasnet(g, num_cells=3, num_conv_filters=4, stem="cifar", num_classes=3).eval()
        assert net(torch.randn(1, 3, 16, 16)).shape == (1, 3)
        assert any(m.kernel_size == (9, 9) for m in net.modules() if isinstance(m, torch.nn.Conv2d))
        with pytest.raises(ValueError, match=r"op 'sep_conv_9x9' is registered already .*override=True"):
            ops.register_op("sep_conv_9x9", lambda c_in, c, stride, pad: None)
    finally:
        ops.OPS.remove("sep_conv_9x9")
    with pytest.raises(genotypes.GenotypeError, match=r"unknown op 'sep_conv_9x9'"):
        genotypes.Genotype.from_dict({"normal": [[0, 1, "sep_conv_9x9", "identity"]],
                                      "reduction": [[0, 1, "identity", "max_pool_3x3"]]})


def test_arch_strings_round_trip_for_every_published_network():
    for name, published in PUBLISHED.items():
        genotype = genotypes.get(published.genotype)
        arch = published.arch()
        assert parse_arch(arch, genotype) == (published.options["num_cells"], published.options["num_conv_filters"])
        assert format_arch(genotype, *parse_arch(arch, genotype)) == arch


@pytest.mark.parametrize("config", sorted(f for f in os.listdir(CONFIGS) if f.startswith(("nasnet_a_large", "nasnet_a_mobile")) and f.endswith(".yaml")))
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

    from nasnet_det.detection.config import get_config

    built = []
    original = nasnet_module.build_cell
    monkeypatch.setattr(nasnet_module, "build_cell", lambda spec, *a: built.append(spec.name) or original(spec, *a))
    cfg = get_config("Base-NASNet-FRCNN.yaml", ["MODEL.DEVICE", "cpu", "MODEL.NASNET.ARCH", "2@384",
                                                "MODEL.NASNET.STEM_MULTIPLIER", "1.0", "MODEL.NASNET.HEAD_NORM", "BN"],
                     register_datasets=False)
    model = build_model(cfg)
    genotype, net_cfg = resolve(genotype="nasnet_a", arch="2@384", stem_multiplier=1.0, num_classes=0)
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
    # an '@' in an existing folder's name is part of the path, not an id list
    (tmp_path / "run@2").mkdir()
    assert parse_spec(f"voc:{tmp_path}/run@2").args == (f"{tmp_path}/run@2", "")
    assert parse_spec(f"voc:{tmp_path}/run@2:val").args == (f"{tmp_path}/run@2", "val")
    assert parse_spec(f"voc:{tmp_path}/voc@{tmp_path}/ids.txt").kind == "ids"
    # an existing VOC folder with a split and an id list: the '@' belongs to neither path
    assert parse_spec(f"voc:{tmp_path}:val@{tmp_path}/ids.txt").args == (f"voc:{tmp_path}:val", f"{tmp_path}/ids.txt")
    from nasnet_det.data import build
    from nasnet_det.errors import DataError

    with pytest.raises(DataError, match="a detection dataset 'coco:/d/i:/d/a.json': classification takes"):
        build("coco:/d/i:/d/a.json")


# ------------------------------------------------------------------------------------------------
# One direction for every import (docs/design.md): each module's imports, top-level and inside
# functions, must point down this order, or stay in their own floor.
FLOORS = {"errors": 0, "io": 0, "config_files": 0, "registry": 0, "procs": 0, "plugins": 0, "genotypes": 1, "modeling": 2, "viz": 2, "data": 3, "search": 4,
          "pretrain": 4, "detection": 5, "benchmarks": 6, "model_zoo": 6, "demo": 7, "commands": 8, "cli": 8,
          "__main__": 8}
PACKAGE = os.path.join(os.path.dirname(__file__), "..", "nasnet_det")


def _imports():
    """(module, imported nasnet_det module, line) for every import statement of the package."""
    import ast

    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            parts = ["nasnet_det"] + os.path.relpath(path, PACKAGE)[:-3].split(os.sep)
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            package = module.split(".") if name == "__init__.py" else module.split(".")[:-1]
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.ImportFrom):
                    base = package[:len(package) - node.level + 1] if node.level else []
                    target = ".".join(base + ([node.module] if node.module else []))
                    if not target.startswith("nasnet_det"):
                        continue
                    for alias in node.names:  # `from . import x` names a module when x is one
                        sub = f"{target}.{alias.name}"
                        exists = os.path.exists(os.path.join(PACKAGE, "..", *sub.split("."))) or \
                            os.path.exists(os.path.join(PACKAGE, "..", *sub.split(".")) + ".py")
                        yield module, sub if exists else target, node.lineno
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.startswith("nasnet_det"):
                            yield module, alias.name, node.lineno


def _floor(module: str):
    parts = module.split(".")
    return FLOORS.get(parts[1]) if len(parts) > 1 else None


def test_every_module_has_a_floor_and_the_design_page_lists_it():
    # a module without a floor would go unchecked by the test below; one the layout omits goes unexplained
    paths = sorted(os.path.relpath(os.path.join(d, f), os.path.join(PACKAGE, "..")).replace(os.sep, "/")
                   for d, _, fs in os.walk(PACKAGE) for f in fs if f.endswith(".py") and f != "__init__.py")
    assert [p for p in paths if _floor(p[:-3].replace("/", ".")) is None] == []
    layout = open(os.path.join(PACKAGE, "..", "docs", "design.md")).read().split("## Layout", 1)[1]
    named, folders, folder = set(), {}, None  # folder -> the module names its lines mention
    for line in layout.splitlines():
        word = line.split()[0] if line.strip() else ""
        if word.startswith("nasnet_det/"):
            named.add(word)
            folder = word if word.endswith("/") else None
            if folder:
                folders[folder] = set(re.findall(r"\b(\w+\.py)\b", line))
        elif folder and line.startswith(" "):
            folders[folder] |= set(re.findall(r"\b(\w+\.py)\b", line))

    def listed(path):
        if path in named:
            return True
        for folder, mentioned in folders.items():  # a folder line covers its modules, or the ones it names
            if path.startswith(folder):
                rest = path[len(folder):]
                return not mentioned or rest.split("/")[0] in mentioned or rest.split("/")[0] + "/" in named
        return False
    assert [p for p in paths if not listed(p)] == [], "docs/design.md's layout does not list these"


def test_every_import_points_down_the_pipeline():
    upward = sorted({f"{m} -> {t} (line {n})" for m, t, n in _imports()
                     if _floor(m) is not None and _floor(t) is not None and _floor(t) > _floor(m)})
    assert upward == []


def test_no_circle_of_imports_between_modules():
    graph = {}
    for m, t, _ in _imports():
        if m != t and not t == "nasnet_det":
            graph.setdefault(m, set()).add(t)
    # a package's __init__ re-exporting its own modules is not a circle
    def edges(m):
        return {t for t in graph.get(m, ()) if not (m.startswith(t + ".") or t.startswith(m + "."))}

    seen, stack, cycles = {}, [], []

    def visit(m):
        seen[m] = 1
        stack.append(m)
        for t in edges(m):
            if seen.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in seen:
                visit(t)
        stack.pop()
        seen[m] = 2

    for m in sorted(graph):
        if m not in seen:
            visit(m)
    assert cycles == []


def test_importing_the_genotypes_or_the_search_space_needs_no_detector_and_the_library_no_demo():
    modules = {t for m, t, _ in _imports() if not m.startswith(("nasnet_det.commands", "nasnet_det.demo"))}
    assert "nasnet_det.demo" not in modules
    search_imports = {t for m, t, _ in _imports() if m.startswith("nasnet_det.search")}
    assert not any(t.startswith("nasnet_det.detection") for t in search_imports)


def test_help_shows_each_fields_comment_its_default_and_its_choices():
    from nasnet_det.commands.search import parser

    text = " ".join(parser().format_help().split())
    assert "--child-channels-last, --no-child-channels-last train in channels_last on the CPU" in text
    assert "the supernet's initialisation (supernet.RECIPE): all, none or a comma list of parts (default: all)" in text
    assert "--strategy {ppo,random,evolution,tpe,gp,predictor-evolution} default: ppo; one of ppo, random, evolution," in text
