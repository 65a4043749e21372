"""What the benchmarks read of processes from ``/proc`` (Linux): CPU seconds, resident
memory, child processes."""

from __future__ import annotations

import os
from pathlib import Path


def _stat_cpu(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int | str) -> float:
    """CPU seconds (user + system, all threads) of a process."""
    return _stat_cpu(Path(f"/proc/{pid}/stat"))


def thread_cpu(pid: int, name: str) -> float:
    """CPU seconds of a process's threads called ``name``."""
    used = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if (task / "comm").read_text().strip() == name:
            used += _stat_cpu(task / "stat")
    return used


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # a thread that ended meanwhile
            pass
    return found


def cpu_with_children(pid: int | None = None) -> float:
    """CPU seconds of a process (this one by default) and its children's."""
    pid = os.getpid() if pid is None else pid
    used = cpu_of(pid)
    for child in children_of(pid):
        try:
            used += cpu_of(child)
        except OSError:  # ended meanwhile
            pass
    return used


def rss_of(pid: int | str = "self") -> tuple[float, float]:
    """Resident memory now and at its peak (MB) of a process."""
    rss = hwm = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
    return rss, hwm
