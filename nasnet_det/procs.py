"""Processes that end with the one that started them (the errors/io floor: imports nothing of ours).

A search's workers, a ``torchrun`` rank and a rank of Detectron2's ``launch`` all run in processes
of their own; when their parent dies (``kill -9`` of the search, of ``torchrun``, of
``train_net.py --num-gpus 2``) nothing tells them, and they would go on training and writing
checkpoints into the run folder. :func:`die_with_parent` ends them.
"""
from __future__ import annotations

import os
import signal
import threading
import time


def die_with_parent(parent_pid: int, pdeathsig: bool = True, ignore_sigint: bool = True, poll: float = 0.5) -> None:
    """End this process when ``parent_pid`` dies, even by ``kill -9``.

    A watcher thread polls the parent's pid (an orphan is re-parented, so ``getppid`` changes) and
    exits at once; ``pdeathsig``: on Linux the kernel also sends SIGKILL at the parent's death
    (PR_SET_PDEATHSIG; only where the parent forked from its main thread, as a process pool does).
    ``ignore_sigint``: Ctrl-C reaches the whole process group, and the parent stops its workers
    itself (no traceback per worker).
    """
    if pdeathsig:
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll)
        os._exit(1)

    if os.getppid() != parent_pid:
        os._exit(1)
    if ignore_sigint:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def die_with_launcher() -> None:
    """In a rank process of ``torchrun`` or Detectron2's ``launch``: exit once the launcher is gone.
    Signals keep their meaning (the launcher forwards SIGINT / SIGTERM, and a rank stops cleanly)."""
    die_with_parent(os.getppid(), pdeathsig=False, ignore_sigint=False)
