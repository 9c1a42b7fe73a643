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
    if getattr(cfg, "latency_target", None) is not None:
        lines += latency_section(cfg, ok)
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


def pareto(points: List[tuple]) -> List[int]:
    """Indices of the (latency, accuracy) points no other point beats on both (faster and at least as accurate)."""
    front = []
    for i, (lat, acc) in enumerate(points):
        if not any((l2 <= lat and a2 >= acc) and (l2, a2) != (lat, acc) for l2, a2 in points):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def latency_section(cfg, ok: List[dict]) -> List[str]:
    """The accuracy / latency front of a latency-constrained search: a table of the Pareto-optimal
    children, and ``accuracy_latency.png`` beside the report (NASNet-A at the same N@F marked)."""
    rows = [t for t in ok if "latency_ms" in t.get("metrics", {})]
    points = [(t["metrics"]["latency_ms"], t["metrics"]["accuracy"]) for t in rows]
    front = pareto(points)
    met = sum(lat <= cfg.latency_target for lat, _ in points)
    lines = ["", f"## Accuracy and latency (target {cfg.latency_target:g} ms at {cfg.latency_arch}, "
             f"{cfg.latency_size} px; {'hard limit' if cfg.latency_limit else f'MnasNet w = {cfg.latency_weight:g}'})", "",
             f"{met} of {len(rows)} children meet the target; `genotype.json` is the best of them. "
             "The Pareto-optimal children (none is both faster and more accurate):", "",
             "| child | accuracy | latency ms | mult-adds | params | reward |", "|---|---|---|---|---|---|"]
    for i in front:
        t = rows[i]
        m = t["metrics"]
        lines.append(f"| {t['id']} | {m['accuracy']:.4f} | {m['latency_ms']:.2f} | {m['mult_adds'] / 1e6:.1f}M | "
                     f"{m['latency_params'] / 1e6:.2f}M | {t['reward']:.4f} |")
    lines += ["", "![accuracy and latency](accuracy_latency.png)"]
    return lines


def plot_latency_front(cfg, done: List[dict], nasnet_a_ms: Optional[float], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [t for t in done if t["status"] == "ok" and "latency_ms" in t.get("metrics", {})]
    points = [(t["metrics"]["latency_ms"], t["metrics"]["accuracy"]) for t in rows]
    front = pareto(points)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.scatter([p[0] for p in points], [p[1] for p in points], s=12, color="C0", alpha=0.6, label="children")
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "o-", color="C3", ms=5, label="Pareto-optimal")
    ax.axvline(cfg.latency_target, color="k", ls="--", lw=1, label=f"target {cfg.latency_target:g} ms")
    if nasnet_a_ms is not None:
        ax.axvline(nasnet_a_ms, color="C2", ls=":", lw=1.5, label=f"NASNet-A at {cfg.latency_arch}: {nasnet_a_ms:.1f} ms")
    ax.set_xlabel(f"predicted latency, ms ({cfg.latency_arch}, {cfg.latency_size} px)")
    ax.set_ylabel("accuracy (search reward before the latency term)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
