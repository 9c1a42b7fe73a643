"""Evaluators that misbehave on purpose, run inside the search's worker processes."""
import os
import random
import time

from nasnet_det import genotypes
from nasnet_det.search.evaluators import sep_conv_fraction, synthetic_evaluator


def flaky(genotype_dict, options):
    """Raises for cells whose first op is a 3x3 pool, returns NaN when it is a plain conv."""
    first = genotypes.Genotype.from_dict(genotype_dict).normal.blocks[0].ops[0]
    if first.endswith("pool_3x3"):
        raise RuntimeError(f"simulated out of memory ({first})")
    if first.startswith("conv_"):
        return {"reward": float("nan")}
    return synthetic_evaluator(genotype_dict, options)


def dies_once(genotype_dict, options):
    """Kills its worker process the first time it runs (a marker file remembers)."""
    marker = os.path.join(os.environ["NASNET_TEST_DIR"], "died")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return synthetic_evaluator(genotype_dict, options)


def jittered_evaluator(genotype_dict: dict, settings: dict) -> dict:
    """The synthetic reward after a random wait: children finish in a different order every run."""
    time.sleep(random.SystemRandom().uniform(0.0, 0.25))
    return {"reward": sep_conv_fraction(genotypes.Genotype.from_dict(genotype_dict))}


def fidelity_evaluator(genotype_dict: dict, settings: dict) -> dict:
    """A reward that depends on the rung: the sep-conv fraction at child epochs 1, a noisy mix of it
    and the cell's first op at more epochs; ``synthetic_seconds`` of waiting first (a kill lands mid-child)."""
    time.sleep(float(settings.get("synthetic_seconds", 0.0)))
    g = genotypes.Genotype.from_dict(genotype_dict)
    epochs = settings["child"]["epochs"]
    reward = sep_conv_fraction(g) if epochs == 1 else (sep_conv_fraction(g) + len(g.normal.blocks[0].ops[0])) * epochs
    return {"reward": reward}
