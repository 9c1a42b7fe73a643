"""``python -m nasnet_det COMMAND ...``: the same as the ``nasnet-det`` console script."""
from .commands import run

run()
