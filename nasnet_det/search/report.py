"""What a search leaves for a reader: ``report.md`` (the top-k table) and ``search_curve.png``."""
from __future__ import annotations

from typing import Dict, List, Optional

from .. import genotypes
from ..io import atomic_path, write_text


def write_report(cfg, done: List[dict], path: str, supernet_history: Optional[List[dict]] = None) -> None:
    """The search's settings in brief and its top-k children, best first (``cfg``: a SearchConfig);
    for a one-shot search, the supernet's training loss and inherited accuracy per epoch."""
    ok = sorted((t for t in done if t["status"] == "ok"), key=lambda t: -t["reward"])
    lines = [f"# Search report: {cfg.strategy}", "",
             f"- children: {len(done)} completed, {len(done) - len(ok)} failed (reward {cfg.failure_reward})",
             f"- method: {cfg.method} ({cfg.task} reward); evaluator: {cfg.evaluator}; backend: {cfg.backend} "
             f"with {cfg.workers} workers",
             "- best genotype: `genotype.json` (use as MODEL.NASNET.GENOTYPE)", "",
             f"## Top {min(cfg.top_k, len(ok))}", "",
             "| rank | child | reward | params | seconds | normal cell ops | reduction cell ops |",
             "|---|---|---|---|---|---|---|"]
    for rank, t in enumerate(ok[: cfg.top_k], 1):
        g = genotypes.Genotype.from_dict(t["genotype"])
        ops = lambda cell: ", ".join(f"{b.ops[0]}({b.inputs[0]})+{b.ops[1]}({b.inputs[1]})" for b in cell.blocks)
        lines.append(f"| {rank} | {t['id']} | {t['reward']:.4f} | {t.get('params') or '-'} | {t['seconds']:.1f} | "
                     f"{ops(g.normal)} | {ops(g.reduction)} |")
    if supernet_history:
        lines += ["", "## Supernet training", "",
                  "Per epoch: the mean training loss, and the held-out accuracy of 4 fixed random paths with the "
                  "supernet's weights (BN re-estimated; chance is 1 / classes).", "",
                  "| epoch | step | loss | inherited accuracy, random paths |", "|---|---|---|---|"]
        for h in supernet_history:
            score = "-" if h.get("inherited") is None else f"{h['inherited']:.4f}"
            lines.append(f"| {h['epoch']} | {h['step']} | {h['loss']:.4f} | {score} |")
    write_text(path, "\n".join(lines) + "\n")


def plot_search_curve(rewards_by_strategy: Dict[str, List[float]], path: str) -> None:
    """Reward of each child and the running best, per strategy, in completion order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for i, (name, rewards) in enumerate(rewards_by_strategy.items()):
        color = f"C{i}"
        running, best = [], float("-inf")
        for r in rewards:
            best = max(best, r)
            running.append(best)
        ax.scatter(range(1, len(rewards) + 1), rewards, s=10, alpha=0.5, color=color, label=f"{name}: child reward")
        ax.plot(range(1, len(rewards) + 1), running, color=color, label=f"{name}: running best")
    ax.set_xlabel("children completed")
    ax.set_ylabel("reward (validation accuracy)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
