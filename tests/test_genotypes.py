import json

import pytest

from nasnet_det import genotypes
from nasnet_det.errors import GenotypeError
from nasnet_det.genotypes import Block, Cell


def test_zoo_has_published_cells_with_sources():
    assert {"nasnet_a", "pnasnet_5", "amoebanet_a", "darts_v2"} <= set(genotypes.names())
    for name in genotypes.names():
        g = genotypes.get(name)
        assert g.name == name and g.source


def test_nasnet_a_is_the_released_cell():
    g = genotypes.get("nasnet_a")
    assert [b.inputs for b in g.normal.blocks] == [(0, 1), (1, 1), (0, 1), (1, 1), (0, 0)]
    assert g.normal.blocks[0].ops == ("sep_conv_5x5", "sep_conv_3x3")
    assert g.normal.output_states() == (1, 2, 3, 4, 5, 6)  # released concat, not figure 4's
    assert g.reduction.blocks[3] == Block((3, 2), ("identity", "avg_pool_3x3"))
    assert g.reduction.output_states() == (3, 4, 5, 6)


@pytest.mark.parametrize("name", genotypes.names())
def test_json_round_trip(name, tmp_path):
    g = genotypes.get(name)
    path = tmp_path / f"{name}.json"
    g.to_json(str(path))
    back = genotypes.get(str(path))
    assert back == g
    assert json.loads(path.read_text())["normal"]["blocks"][0]["ops"] == list(g.normal.blocks[0].ops)


def test_json_list_blocks_and_default_concat():
    text = json.dumps({"normal": {"blocks": [[0, 1, "sep_conv_3x3", "identity"], [2, 0, "max_pool_3x3", "conv_1x1", "concat"]]},
                       "reduction": [[0, 1, "avg_pool_3x3", "max_pool_5x5"]]})
    g = genotypes.Genotype.from_json(text)
    # unused states: state 1 is read by block 0, state 0 too; 2 by block 1; so only 3 is left
    assert g.normal.output_states() == (3,)
    assert g.normal.blocks[1].combine == "concat"
    assert g.reduction.output_states() == (2,)


def test_darts_import_swaps_input_numbering():
    # quark0/darts' "NASNet" genotype: the NASNet-A blocks in DARTS numbering, with figure 4's concat
    darts_nasnet = genotypes.from_darts(
        normal=[("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 0),
                ("avg_pool_3x3", 1), ("skip_connect", 0), ("avg_pool_3x3", 0), ("avg_pool_3x3", 0),
                ("sep_conv_3x3", 1), ("skip_connect", 1)],
        normal_concat=[2, 3, 4, 5, 6],
        reduce=[("sep_conv_5x5", 1), ("sep_conv_7x7", 0), ("max_pool_3x3", 1), ("sep_conv_7x7", 0),
                ("avg_pool_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 3), ("avg_pool_3x3", 2),
                ("sep_conv_3x3", 2), ("max_pool_3x3", 1)],
        reduce_concat=[4, 5, 6])
    released = genotypes.get("nasnet_a")
    assert darts_nasnet.normal.blocks == released.normal.blocks
    assert darts_nasnet.reduction.blocks == released.reduction.blocks
    assert darts_nasnet.normal.output_states() != released.normal.output_states()


def test_darts_zero_op_rejected():
    with pytest.raises(GenotypeError, match="zero op"):
        genotypes.from_darts([("none", 0), ("sep_conv_3x3", 1)], [2], [("max_pool_3x3", 0), ("max_pool_3x3", 1)], [2])


def _blocks(*blocks):
    return Cell(tuple(Block(tuple(b[:2]), tuple(b[2:4])) for b in blocks))


OK = _blocks((0, 1, "sep_conv_3x3", "identity"))


@pytest.mark.parametrize("cell, message", [
    (_blocks((0, 1, "sep_conv_9x9", "identity")), "unknown op 'sep_conv_9x9'"),
    (_blocks((0, 7, "identity", "identity")), "input index 7 out of range"),
    (_blocks((0, -1, "identity", "identity")), "negative"),
    (_blocks((0, 2, "identity", "identity")), "uses its own output"),
    (_blocks((0, 3, "identity", "identity"), (0, 1, "identity", "identity")), "output of a later block"),
    (Cell(()), "empty cell"),
    (Cell(OK.blocks, concat=(5,)), "concat index 5 out of range"),
    (Cell((Block((0, 1), ("identity", "identity"), "multiply"),)), "unknown combine 'multiply'"),
])
def test_validation_names_the_problem(cell, message):
    with pytest.raises(GenotypeError, match=message):
        genotypes.make(normal=cell, reduction=OK, name="bad")


def test_bad_json_and_unknown_names(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(GenotypeError, match="bad JSON"):
        genotypes.get(str(bad))
    with pytest.raises(GenotypeError, match="not found"):
        genotypes.get(str(tmp_path / "missing.json"))
    with pytest.raises(GenotypeError, match="unknown genotype 'nasnet_z'"):
        genotypes.get("nasnet_z")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"normal": {"blocks": []}}))
    with pytest.raises(GenotypeError, match="missing the 'reduction' cell"):
        genotypes.get(str(wrong))
