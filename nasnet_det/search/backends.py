"""Where children run: a pool of local processes, or Ray tasks, behind one protocol.

A backend takes ``submit(child_id, args)`` calls, where ``args`` are those of
:func:`nasnet_det.search.evaluators.run_evaluation`, and reports with ``wait()``: a list of
``(child_id, kind, payload)``, ``kind`` being ``ok`` (payload: the evaluator's result), ``error``
(the child raised: payload is the message), ``fatal`` (the worker lacks a plug-in: every child would
fail, :class:`~nasnet_det.errors.PluginError`) or ``lost`` (its worker or node died: re-queue it).

Neither backend leaves work running after its driver dies, even by ``kill -9``: local workers end
themselves when their parent goes, and a local Ray cluster started by the search is reaped by a
small watchdog process (:mod:`nasnet_det.search.reaper`).
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import subprocess
import sys
from typing import Dict, List, Optional, Protocol, Tuple

from ..errors import PluginError, SearchError, one_line
from ..procs import die_with_parent
from .evaluators import run_evaluation

Outcome = Tuple[int, str, object]  # (child id, "ok" / "error" / "lost", payload)


class Backend(Protocol):
    workers: int

    def submit(self, child_id: int, args: tuple) -> None:
        """Start ``run_evaluation(*args)`` for child ``child_id``."""

    def running(self) -> int:
        """Children submitted and not yet reported by :meth:`wait`."""

    def wait(self) -> List[Outcome]:
        """Block until at least one child finishes; report every finished one."""

    def close(self) -> None:
        """Cancel what is still running and release the workers."""


def build_backend(name: str, workers: int, ray_address: Optional[str] = None, gpus_per_child: float = 0.0) -> Backend:
    if name == "local":
        return LocalBackend(workers)
    if name == "ray":
        return RayBackend(workers, ray_address, gpus_per_child)
    raise SearchError(f"unknown backend {name!r}; use local or ray")


def _run_evaluation(*args):
    return run_evaluation(*args)


def start_reaper() -> subprocess.Popen:
    """A watchdog process that kills this process's descendants once this process is gone.

    It runs in a session of its own, so a kill of this process's group does not take it along.
    """
    return subprocess.Popen([sys.executable, "-m", "nasnet_det.search.reaper", str(os.getpid())],
                            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


class LocalBackend:
    """Children in a pool of spawned local processes; a pool broken by a dead worker is replaced."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = self._new_pool()
        self._futures: Dict[cf.Future, tuple] = {}  # future -> (child id, the pool running it)

    def _new_pool(self):
        # spawn: a clean interpreter per worker (forking a process that has run torch threads can hang)
        return cf.ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                      initializer=die_with_parent, initargs=(os.getpid(),))

    def _restart(self):
        """A worker died and broke the pool: start a fresh one. The old pool's futures resolve as
        BrokenProcessPool and are reported lost by ``wait``."""
        old, self._pool = self._pool, self._new_pool()
        old.shutdown(wait=False, cancel_futures=True)

    def running(self) -> int:
        return len(self._futures)

    def submit(self, child_id: int, args: tuple) -> None:
        try:
            future = self._pool.submit(_run_evaluation, *args)
        except cf.process.BrokenProcessPool:  # broke since the last wait(), e.g. a worker was killed
            self._restart()
            future = self._pool.submit(_run_evaluation, *args)
        self._futures[future] = (child_id, self._pool)

    def wait(self) -> List[Tuple[int, str, object]]:
        done, _ = cf.wait(list(self._futures), return_when=cf.FIRST_COMPLETED)
        results, restart = [], False
        for future in done:
            child_id, pool = self._futures.pop(future)
            try:
                results.append((child_id, "ok", future.result()))
            except cf.process.BrokenProcessPool as e:
                restart = restart or pool is self._pool
                results.append((child_id, "lost", f"worker process died: {e}"))
            except PluginError as e:
                results.append((child_id, "fatal", str(e)))
            except BaseException as e:  # the child's own failure, raised in the worker
                results.append((child_id, "error", f"{type(e).__name__}: {e}"))
        if restart:
            self._restart()
        return results

    def close(self):
        self._pool.shutdown(wait=False, cancel_futures=True)


RAY_CONNECT_TIMEOUT_S = 5.0


def check_ray_address(address: str, timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """A host:port (or ray://host:port) where nothing answers is one line within ``timeout`` seconds;
    Ray itself retries for minutes, printing warnings. ``auto`` is left to Ray (it fails at once)."""
    import socket

    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        if address != "auto":
            raise SearchError(f"--ray-address {address!r}: give HOST:PORT of the cluster's head (ray start --head "
                              "prints it), ray://HOST:PORT, or auto")
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        cause = "timed out" if isinstance(e, socket.timeout) else (e.strerror or type(e).__name__).lower()
        raise SearchError(f"--ray-address {address}: nothing answers there ({cause} within {timeout:g} s); start the "
                          f"cluster with ray start --head --port {port}, or leave --ray-address unset for a "
                          "local Ray") from None


class RayBackend:
    """One Ray task per child, on a local Ray (``address`` None) or a cluster (``auto`` or host:port)."""

    def __init__(self, workers: int, address: Optional[str], gpus_per_child: float):
        try:
            import ray
        except ImportError:
            raise SearchError("the ray backend needs Ray: pip install 'ray>=2.9'") from None
        self.ray = ray
        if not ray.is_initialized():
            if address is None:
                # a local cluster lives in this process's tree; Ray's agents outlive a killed driver
                start_reaper()
            else:
                check_ray_address(address)
            try:
                ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False,
                         log_to_driver=False, ignore_reinit_error=True)
            except (ConnectionError, RuntimeError, TimeoutError) as e:
                raise SearchError(f"--ray-address {address}: cannot join the Ray cluster ({one_line(e)}); start one "
                                  "with ray start --head, or leave --ray-address unset for a local Ray") from None
        # Ray re-runs a task whose worker or node died (max_retries); exceptions raised by the child
        # itself are not retried by Ray but by the runner, so they are counted and recorded.
        self._remote = ray.remote(num_cpus=1, num_gpus=gpus_per_child, max_retries=2)(_run_evaluation)
        self._refs: Dict[object, int] = {}
        self.workers = workers

    def running(self) -> int:
        return len(self._refs)

    def submit(self, child_id: int, args: tuple) -> None:
        self._refs[self._remote.remote(*args)] = child_id

    def wait(self):
        ready, _ = self.ray.wait(list(self._refs), num_returns=1)
        results = []
        for ref in ready:
            child_id = self._refs.pop(ref)
            try:
                results.append((child_id, "ok", self.ray.get(ref)))
            except self.ray.exceptions.RayTaskError as e:
                if isinstance(e.cause, PluginError):
                    results.append((child_id, "fatal", str(e.cause)))
                    continue
                results.append((child_id, "error", str(e.cause if e.cause is not None else e).splitlines()[-1]))
            except self.ray.exceptions.RayError as e:  # worker/node died beyond Ray's own retries
                results.append((child_id, "lost", f"{type(e).__name__}: {e}"))
        return results

    def close(self):
        for ref in self._refs:
            self.ray.cancel(ref, force=True)
