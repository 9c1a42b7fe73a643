"""Score a list of cells with one ranking method; with --truth, say how well it ranks them.

    nasnet-det rank CELLS.jsonl --out SCORES.jsonl                      # the default method, prior+gradnorm
    nasnet-det rank CELLS.jsonl --method synflow --out SCORES.jsonl
    nasnet-det rank CELLS.jsonl --method per-child --seeds 2 --child-epochs 1 --out SCORES.jsonl
    nasnet-det rank CELLS.jsonl --method oneshot --supernet runs/os/supernet.pt --out SCORES.jsonl
    nasnet-det rank "$(python -c 'from nasnet_det.benchmarks.ground_truth import CELLS; print(CELLS)')" \\
        --method params --truth accuracy --out runs/params.jsonl      # against the shipped ground truth

CELLS.jsonl: one JSON object per line with a ``genotype`` key (a genotype object, a published
name, or a path to a genotype file); every other key is copied to the output. NASLib's
NAS-Bench-301 zero-cost file (``zc_nasbench301.json``) is read as well: its keys are converted to
genotypes and each cell's ``val_accuracy`` comes along (``--truth val_accuracy``). LaMCTS cells
converted to genotypes (facebookresearch/LaMCTS' trace, ``docs/search.md``) are cells JSONL with
``--truth cifar10_acc``. SCORES.jsonl gets
each input object plus ``score`` (larger: better), ``seconds`` and the method's details.
Resumable: scored cells go to ``SCORES.jsonl.part`` as they finish, and the same command started
again continues from there. The network scored is the search's child (``--dataset``, ``--child-*``,
the same options as ``nasnet-det search``).

Methods (nasnet_det.search.ranking):
"""
from __future__ import annotations

import dataclasses
import json
import math
import os

from .. import cli, genotypes
from ..errors import SearchError, UserError
from ..io import FolderLock, write_text
from ..search.child import ChildConfig
from ..search.ranking import RankConfig, Scorer, finish_scores, format_metrics, method_help, methods, rank_metrics
from ..search.trials import TrialLog


def parser():
    # the methods as they are now (a --plugin's proxies included)
    p = cli.ArgumentParser(description=__doc__ + "\n".join(f"    {name:<11}{method_help(name)}" for name in methods()))
    p.add_argument("cells", metavar="CELLS.jsonl")
    p.add_argument("--method", default="prior+gradnorm", choices=methods(),
                   help="the ranking method (default: prior+gradnorm, the best measured against public CIFAR-10 "
                        "accuracies, docs/search.md)")
    p.add_argument("--out", required=True, metavar="SCORES.jsonl")
    p.add_argument("--truth", metavar="KEY", help="the input key holding each cell's true accuracy: print "
                                                  "Kendall tau, Spearman rho, top-10%% precision and regret")
    p.add_argument("--seeds", type=int, default=1, help="per-child: seeds averaged per cell")
    p.add_argument("--supernet", metavar="PATH", help="oneshot: a search's OUT/supernet.pt")
    p.add_argument("--proxy-batch", type=int, default=64, help="zero-cost proxies: images in the minibatch")
    p.add_argument("--dataset", default=ChildConfig.dataset, help="the children's data: noisy-digits (default), digits, cifar10:PATH, ...")
    cli.add_dataclass_options(p, ChildConfig, prefix="child-", skip=("dataset",))
    p.add_argument("--no-progress", action="store_true")
    return p


def read_cells(path: str, truth=None) -> list:
    """The cells file's objects; a malformed line is one error naming the file and the line."""
    from ..benchmarks.public import cell_lines, is_naslib_file, read_truth

    if not os.path.isfile(path):
        raise UserError(f"cells file not found: {path}")
    if is_naslib_file(path):
        if truth not in (None, "val_accuracy"):
            raise UserError(f"{path} is NAS-Bench-301's file: its truth key is val_accuracy, not {truth!r}")
        return [({"genotype": r["genotype"], "val_accuracy": r["accuracy"]}, genotypes.Genotype.from_dict(r["genotype"]))
                for r in read_truth(path)]
    cells = []
    for where, record, genotype in cell_lines(path):
        value = record.get(truth) if truth is not None else 0.0
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise UserError(f"{where}: no finite number under the truth key {truth!r} (got {value!r})")
        cells.append((record, genotype))
    if not cells:
        raise UserError(f"{path} holds no cells")
    return cells


def main(argv=None):
    a = parser().parse_args(argv)
    child = ChildConfig(dataset=a.dataset, **{f.name: getattr(a, "child_" + f.name)
                                              for f in dataclasses.fields(ChildConfig) if f.name != "dataset"})
    cfg = RankConfig(a.method, child, a.seeds, a.supernet, a.proxy_batch)
    from ..data import check_spec
    check_spec(child.dataset)
    if os.path.abspath(a.out) == os.path.abspath(a.cells):
        raise UserError(f"--out {a.out} is the cells file itself: give another path (nothing was written)")
    if os.path.isdir(a.out):
        raise UserError(f"--out {a.out} is a folder: give a file path such as {os.path.join(a.out, 'scores.jsonl')} "
                        "(nothing was scored)")
    cells = read_cells(a.cells, a.truth)
    taken = next((i for i, (record, _) in enumerate(cells) if "score" in record), None)
    if taken is not None:
        raise UserError(f"{a.cells}: cell {taken + 1} has a key named 'score', where rank writes its score: rename "
                        "that key (nothing was scored)")
    # one writer per output: a second rank into the same --out would share its .part file
    lock = FolderLock.for_file(a.out, "rank").acquire(UserError)
    try:
        return _rank(a, cfg, cells)
    finally:
        lock.release()


def _rank(a, cfg: RankConfig, cells: list) -> list:
    part = TrialLog(a.out + ".part")
    part.repair()
    done = {r["line"]: r for r in part.read() if isinstance(r.get("line"), int)}
    stored_method = {r.get("method") for r in done.values()}
    if done and stored_method != {a.method}:
        raise SearchError(f"{part.path} holds scores of --method {', '.join(map(str, stored_method))}: "
                          f"use another --out or delete it")
    scorer = Scorer(cfg)
    bar = None
    if not a.no_progress:
        from tqdm import tqdm
        bar = tqdm(total=len(cells), initial=len(done), unit="cell", desc=f"rank {a.method}")
    for line, (record, genotype) in enumerate(cells):
        if line in done:
            continue
        result = scorer(genotype)
        done[line] = {"line": line, "method": a.method, **result}
        part.append(done[line])
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    scored = finish_scores(a.method, [dict(done[i]) for i in range(len(cells))])
    out = []
    for (record, _), result in zip(cells, scored):
        result.pop("line")
        out.append({**record, **result})
    write_text(a.out, "".join(json.dumps(r) + "\n" for r in out))
    os.remove(part.path)
    seconds = sum(r["seconds"] for r in out) / len(out)
    print(f"{len(out)} cells scored with {a.method} ({seconds:.3f} s per cell): {a.out}")
    if a.truth:
        metrics = rank_metrics([r["score"] for r in out], [r[a.truth] for r in out])
        print(f"against {a.truth}: {format_metrics(metrics)}")
    return out


if __name__ == "__main__":
    cli.run(main)
