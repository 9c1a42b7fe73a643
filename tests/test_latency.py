"""The latency table and the sum-of-parts model (nasnet_det.search.latency): what it times, how a
table resumes and refuses a foreign one, and the command's bad input. The model's error against
measured latency is a benchmark (tools/benchmark.py latency), not a test: timings vary by machine."""
import json

import pytest

from nasnet_det.search import latency

SIZE, ARCH = (32, 32), "1@192"  # NASNet-A 1@192: one normal cell per stage, F = 8


def _keys(path):
    with open(path) as f:
        return [json.loads(line).get("key") for line in f][1:]  # the correction line has none


def test_a_table_times_each_part_once_resumes_and_predicts_the_sum_of_its_parts(tmp_path):
    path = str(tmp_path / "table.jsonl")
    first = latency.build_table(path, ARCH, SIZE, cells=0, progress=False, warmup=0, repeats=1, correct=0)
    published = len(first.entries)
    assert published > 0 and len(_keys(path)) == published
    # a rebuild with more cells keeps what is there and times only the new parts (a resumed build)
    again = latency.build_table(path, ARCH, SIZE, cells=2, progress=False, warmup=0, repeats=1, correct=0)
    keys = [k for k in _keys(path) if k]
    assert len(keys) == len(set(keys)) == len(again.entries) >= published
    assert {k: v for k, v in again.entries.items() if k in first.entries} == first.entries

    # the prediction is the sum of the network's parts' entries: stem, input convs, ops, adapters, glue, head
    net = latency.classifier_net("nasnet_a", ARCH, SIZE)
    parts = latency.net_parts(net, SIZE, 1, "cpu")
    assert latency.predict(again, "nasnet_a", ARCH, measure_missing=False) == pytest.approx(
        sum(again.entries[p.key] for p in parts))
    kinds = {p.key.split(":")[0] for p in parts}
    assert {"Sequential", "ConvBN", "SeparableConv", "Pool", "FactorizedReduction", "glue", "Linear"} <= kinds
    ops = [m for n, m in net.named_modules() if n.endswith(("op_a", "op_b")) and type(m).__name__ != "Identity"]
    assert sum(p.key.startswith(("SeparableConv", "Pool")) for p in parts) == len(ops)
    assert sum(p.key.startswith("glue") for p in parts) == len(net.cell_names)

    # the correction fitted on networks measured end to end is stored, read back and applied
    fitted = latency.build_table(path, ARCH, SIZE, cells=2, progress=False, warmup=0, repeats=1, correct=3)
    c = latency.LatencyTable(path, "cpu", SIZE, 1, ARCH).correction
    assert c == fitted.correction and c["networks"] == 3
    raw = sum(again.entries[p.key] for p in parts)
    assert latency.predict(fitted, "nasnet_a", ARCH, measure_missing=False) == pytest.approx(
        c["a"] * raw + c["b"] * len(parts) + c["c"])

    # another size is not in the table: one line, unless parts may be measured on the fly
    other = latency.LatencyTable(path, "cpu", (48, 48), 1, ARCH)
    with pytest.raises(latency.LatencyError, match="lacks .* parts of this network"):
        latency.predict(other, "nasnet_a", ARCH, measure_missing=False)


def test_a_foreign_or_broken_table_is_one_line_naming_the_difference(tmp_path):
    path = tmp_path / "table.jsonl"
    header = latency.device_header("cpu", SIZE, 1, ARCH)
    path.write_text(json.dumps({**header, "torch": "1.0.0", "threads": header["threads"] + 7}) + "\n")
    with pytest.raises(latency.LatencyError, match=r"measured elsewhere: torch '1.0.0' \(here .*threads"):
        latency.LatencyTable(str(path), "cpu", SIZE, 1, ARCH)
    path.write_text('{"key": "x", "ms": 1}\n')
    with pytest.raises(latency.LatencyError, match="not a latency table"):
        latency.LatencyTable(str(path), "cpu", SIZE, 1, ARCH)
    path.write_text(json.dumps(header) + '\n{"key": "x", "ms": "fast"}\n')
    with pytest.raises(latency.LatencyError, match="line 2: not a latency entry"):
        latency.LatencyTable(str(path), "cpu", SIZE, 1, ARCH)


def test_the_command_refuses_bad_input_in_one_line(tmp_path, capsys):
    from nasnet_det import cli
    from nasnet_det.commands.latency_table import main

    out = str(tmp_path / "t.jsonl")
    for argv, message in ((["--arch", "4@1000"], "arch '4@1000'"), (["--size", "8", "8"], "at least 32 px"),
                          (["--device", "cuda"], None)):
        with pytest.raises(SystemExit) as e:
            cli.run(main, ["--out", out] + argv)
        if message is None:  # a CUDA build on a machine without a GPU (this one), or no CUDA at all
            import torch

            if torch.cuda.is_available():
                continue
            message = "no CUDA device"
        assert message in str(e.value.code) and str(e.value.code).count("\n") == 0


@pytest.fixture
def one_ms_parts(monkeypatch):
    """Every part takes 1 ms: a network's predicted latency is its number of parts (deterministic)."""
    monkeypatch.setattr(latency.table, "time_part", lambda run, device, warmup=3, repeats=15: 1.0)


@pytest.mark.parametrize("limit", [False, True])
def test_a_latency_constrained_search_scores_records_and_reports_latency(tmp_path, one_ms_parts, limit):
    import statistics

    from nasnet_det import genotypes
    from nasnet_det.search.runner import SearchConfig, run_search

    table = latency.LatencyTable(None, "cpu", SIZE, 1, ARCH)
    target = statistics.median(latency.predict(table, g, ARCH) for g in latency.space_cells(12, seed=5))
    cfg = SearchConfig(strategy="random", budget=10, workers=1, evaluator="synthetic", out=str(tmp_path / "run"),
                       progress=False, latency_target=target, latency_arch=ARCH, latency_size=SIZE[0],
                       latency_limit=limit, failure_reward=-1.0)
    done = run_search(cfg)
    for t in done:
        m = t["metrics"]
        assert set(m) >= {"accuracy", "latency_ms", "latency_params", "mult_adds"} and m["mult_adds"] > 0
        g = genotypes.Genotype.from_dict(t["genotype"])
        assert m["latency_ms"] == latency.predict(table, g, ARCH)  # the table's prediction, recorded
        if limit:
            assert t["reward"] == (m["accuracy"] if m["latency_ms"] <= target else -1.0)
        else:
            assert t["reward"] == pytest.approx(m["accuracy"] * (m["latency_ms"] / target) ** -0.07)
    under = [t for t in done if t["metrics"]["latency_ms"] <= target]
    assert under and len(under) < len(done)  # the target splits this run's children
    best = max(under, key=lambda t: t["reward"])
    assert genotypes.get(str(tmp_path / "run" / "genotype.json")).normal == genotypes.Genotype.from_dict(best["genotype"]).normal
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"{len(under)} of {len(done)} children meet the target" in report
    assert (tmp_path / "run" / "accuracy_latency.png").stat().st_size > 0


def test_a_target_no_cell_meets_is_one_line_naming_the_fastest(tmp_path, one_ms_parts):
    from nasnet_det.search.runner import SearchConfig, run_search

    cfg = SearchConfig(strategy="random", budget=2, workers=1, evaluator="synthetic", out=str(tmp_path / "run"),
                       progress=False, latency_target=3.0, latency_arch=ARCH, latency_size=SIZE[0])
    with pytest.raises(latency.LatencyError, match=r"--latency-target 3 ms: no cell meets it .* predicts \d+\.\d ms"):
        run_search(cfg)


def test_fit_budget_picks_the_largest_width_that_meets_the_target_for_each_depth(monkeypatch):
    from nasnet_det.commands.fit_budget import FILTERS, fit
    from nasnet_det.errors import UserError
    from nasnet_det.modeling.layout import format_arch

    # a part "takes" its output's size / 1e4 ms: deterministic, and growing with the width
    monkeypatch.setattr(latency.table, "time_part", lambda run, device, warmup=3, repeats=15: run().numel() / 1e4)
    table = latency.LatencyTable(None, "cpu", SIZE, 1)
    reference = __import__("nasnet_det.genotypes", fromlist=["get"]).get("nasnet_a")
    target = latency.predict(table, "pnasnet_5", format_arch(reference, 6, 20))  # N=2, F=20 fits exactly
    result = fit(table, "pnasnet_5", target, max_cells=2, log=lambda *a: None)
    for c in result["candidates"]:
        assert c["latency_ms"] <= target
        wider = FILTERS[FILTERS.index(c["filters"]) + 1]
        assert latency.predict(table, "pnasnet_5", format_arch(reference, 3 * c["num_cells"], wider)) > target
    assert {c["num_cells"]: c["filters"] for c in result["candidates"]}[2] == 20
    assert result["best"]["mult_adds"] == max(c["mult_adds"] for c in result["candidates"])
    with pytest.raises(UserError, match=r"no N@F of pnasnet_5 meets it .* the smallest tried predicts"):
        fit(table, "pnasnet_5", 1e-3, max_cells=1, log=lambda *a: None)


def test_a_detector_is_timed_as_its_backbone_fpn_and_heads_and_a_search_can_target_it(tmp_path, one_ms_parts):
    pytest.importorskip("detectron2")
    import torch

    from nasnet_det import genotypes
    from nasnet_det.detection.latency import build_detector
    from nasnet_det.search.runner import SearchConfig, run_search

    net, size = "detector:demo_fpn_cpu.yaml", (64, 64)
    parts = {g: latency.network_parts(g, ARCH, size, 1, "cpu", net) for g in ("nasnet_a", "pnasnet_5")}
    a, p = parts["nasnet_a"], parts["pnasnet_5"]
    kinds = {k.key.split(":")[0] for k in a}
    assert {"preprocess", "ModuleList", "heads", "SeparableConv", "glue"} <= kinds and "Linear" not in kinds
    # the backbone's parts are the classifier's (built with the config's MODEL.NASNET settings) without
    # its pool and classifier
    options = {"stem_multiplier": 1.0, "skip_reduction_layer_input": False}  # demo_fpn_cpu.yaml's
    classifier = latency.net_parts(latency.classifier_net("nasnet_a", ARCH, size, **options), size, 1, "cpu", head=False)
    assert [k.key for k in classifier] == [k.key for k in a if not k.key.startswith(("preprocess", "ModuleList", "heads"))]
    # the heads read 64-channel FPN levels whatever the cell: one entry serves every cell; the FPN's
    # laterals read the cell's widths (PNASNet concatenates 5 states, NASNet-A 6)
    heads = [[k.key for k in x if k.key.startswith(kind)] for x in (a, p) for kind in ("heads", "ModuleList")]
    assert heads[0] == heads[2] and len(heads[0]) == 1 and heads[1] != heads[3]

    # the timed RPN proposes its anchors, top-k unsuppressed: the ROI head's load is the config's
    # POST_NMS_TOPK_TEST on any image, not what random weights happen to keep
    model = build_detector(genotypes.get("nasnet_a"), ARCH, "demo_fpn_cpu.yaml")
    for seed in (0, 1):
        image = torch.rand(3, *size, generator=torch.Generator().manual_seed(seed)) * 255
        with torch.no_grad():
            images = model.preprocess_image([{"image": image}])
            proposals, _ = model.proposal_generator(images, model.backbone(images.tensor), None)
        assert len(proposals[0]) == 100  # demo_fpn_cpu.yaml: RPN.POST_NMS_TOPK_TEST 100

    # a search whose reward reads the detector's latency (1 ms a part: its latency is its part count)
    target = len(a) + 50
    cfg = SearchConfig(strategy="random", budget=2, workers=1, evaluator="synthetic", out=str(tmp_path / "run"),
                       progress=False, latency_target=target, latency_arch=ARCH, latency_size=size[0],
                       latency_network=net)
    for t in run_search(cfg):
        g = genotypes.Genotype.from_dict(t["genotype"])
        assert t["metrics"]["latency_ms"] == len(latency.network_parts(g, ARCH, size, 1, "cpu", net))
    header = json.loads((tmp_path / "run" / "latency_table.jsonl").read_text().splitlines()[0])
    assert header["network"] == net

    # a classifier's table handed to a detector's search, an unknown network, the paper layout: one line each
    classifier_table = tmp_path / "classifier.jsonl"
    latency.LatencyTable(str(classifier_table), "cpu", size, 1, ARCH)
    for kwargs, message in (({"latency_table": str(classifier_table)}, "times the classifier network, this asks for "
                             "detector:demo_fpn_cpu.yaml: build a table with nasnet-det latency-table --network"),
                            ({"latency_network": "segmenter"}, "latency network 'segmenter': use one of classifier, "
                             "detector"),
                            ({"latency_network": "detector:nasnet_a_mobile_frcnn.yaml"}, "times the FPN layout")):
        bad = SearchConfig(**{**vars(cfg), "out": str(tmp_path / "bad"), **kwargs})
        with pytest.raises(latency.LatencyError, match=message) as e:
            run_search(bad)
        assert "\n" not in str(e.value)


def test_a_table_whose_header_never_reached_the_disk_starts_again(tmp_path):
    # a full disk (or a kill) during the first write leaves an empty file or a torn header line
    from nasnet_det.search.latency import LatencyTable
    from nasnet_det.search.trials import TrialLog

    for i, left in enumerate(("", '{"kind": "header", "vers')):
        path = tmp_path / f"table{i}.jsonl"
        path.write_text(left)
        table = LatencyTable(str(path))
        assert table.entries == {} and table.local
        records = TrialLog(str(path)).read()
        assert len(records) == 1 and records[0]["kind"] == "header"


def test_a_network_kind_registered_from_outside_the_package_is_predicted(one_ms_parts):
    # docs/design.md's recipe: a module (here a namespace) with latency_check, latency_parts, latency_forward
    import types

    classifier = latency.NETWORKS.get("classifier")
    kind = types.SimpleNamespace(
        latency_check=lambda spec: None,
        latency_parts=lambda g, arch, size, batch, device, spec: classifier.latency_parts(g, arch, size, batch,
                                                                                          device)[:3],
        latency_forward=classifier.latency_forward)
    latency.NETWORKS.register("first-three", kind, help="the classifier's first three parts")
    try:
        table = latency.LatencyTable(None, "cpu", SIZE, 1)
        assert latency.predict(table, "nasnet_a", ARCH, network="first-three") == 3.0  # 1 ms a part
        assert latency.predict(table, "nasnet_a", ARCH) > 3.0
    finally:
        latency.NETWORKS.remove("first-three")
    with pytest.raises(latency.LatencyError, match="latency network 'first-three'"):
        latency.load_network("first-three")
