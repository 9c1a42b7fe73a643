"""A user's one-shot task, outside the package (registered by plugin_example.py as "my-task"): the
classification task's supernet, its rewards marked so a test can see which module scored them."""
from nasnet_det.search.tasks import classification

SUPERNET = classification.SUPERNET
CHILD_DEFAULTS: dict = {}
METRICS: tuple = ()
check = classification.check


def evaluate(genotype_dict, settings):
    return {**classification.evaluate(genotype_dict, settings), "scored_by": "plugin_task"}
