"""``python -m nasnet_det.search.reaper PID``: once process PID is gone, kill what it left behind.

While PID lives, the reaper notes its descendants every second; after PID dies (even by
``kill -9``), it kills those still alive (identified by pid and start time, so a reused pid is
spared) and exits. The search starts one beside a local Ray cluster, whose agent processes
otherwise outlive a killed driver. Reads ``/proc`` (Linux); elsewhere it does nothing.
"""
import os
import signal
import sys
import time
from typing import Dict, Tuple


def process_table() -> Dict[int, Tuple[int, str, str]]:
    """pid -> (parent pid, start time, state) of every process, from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "
        table[int(entry)] = (int(fields[1]), fields[19], fields[0])
    return table


def descendants(pid: int, table) -> Dict[int, str]:
    """pid -> start time of every descendant of ``pid``."""
    children: Dict[int, list] = {}
    for child, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = {}, list(children.get(pid, []))
    while todo:
        p = todo.pop()
        found[p] = table[p][1]
        todo += children.get(p, [])
    return found


def reap(pid: int, poll: float = 0.5, snapshot_every: float = 1.0) -> int:
    """Wait for ``pid`` to end, then kill its remembered descendants; returns how many."""
    if not os.path.isdir("/proc"):
        return 0
    table = process_table()
    if pid not in table:
        return 0
    start = table[pid][1]
    known: Dict[int, str] = {}
    last = 0.0
    while True:
        table = process_table()
        entry = table.get(pid)
        if entry is None or entry[1] != start or entry[2] == "Z":
            break
        if time.monotonic() - last >= snapshot_every:
            known.update(descendants(pid, table))
            last = time.monotonic()
        time.sleep(poll)
    table = process_table()
    killed = 0
    for child, started in known.items():
        if child in table and table[child][1] == started and child != os.getpid():
            try:
                os.kill(child, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed


if __name__ == "__main__":
    reap(int(sys.argv[1]))
