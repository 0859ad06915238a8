"""CPU time of this client, and CPU time and peak memory of a server's process tree, over one
scenario. The server side reads Linux's /proc/PID/stat and /proc/PID/smaps_rollup, so it needs
no extra package.

Memory is summed over the tree both as RSS and as PSS (proportional set size: a page shared by
n processes counts 1/n in each). Workers spawned by one supervisor share their libraries' pages,
so the RSS sum counts those pages once per process and the PSS sum once in all."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

TICK_S = 1 / os.sysconf("SC_CLK_TCK")
KIB_PER_MIB = 1024
SAMPLE_INTERVAL_S = 0.05
TREE_EVERY = 20  # samples between two reads of the whole process table (about 1 s)
# Fields of /proc/PID/stat after the ")" that ends the command name (proc(5), from field 3).
PPID, UTIME, STIME = 1, 11, 12
MEMORY = ("Rss", "Pss")  # lines of /proc/PID/smaps_rollup, in kB


def _stat(pid: int) -> list[bytes] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:  # the process has exited
        return None
    return data[data.rindex(b")") + 2 :].split()


def _memory_kib(pid: int) -> list[int] | None:
    """The MEMORY lines of the process, in KiB."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as file:
            lines = file.read().splitlines()
    except OSError:
        return None
    found = dict(line.split(b":", 1) for line in lines[1:])
    return [int(found[name.encode()].split()[0]) for name in MEMORY]


def process_tree(root: int) -> set[int]:
    """`root` and its descendants, less this process and its own: a server that runs inside
    the process that started the load generator must not count the load generator."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        fields = _stat(int(entry)) if entry.isdigit() else None
        if fields:
            children.setdefault(int(fields[PPID]), []).append(int(entry))
    tree, frontier = set(), [root]
    while frontier:
        pid = frontier.pop()
        if pid != os.getpid() and pid not in tree:
            tree.add(pid)
            frontier += children.get(pid, [])
    return tree


class Usage:
    """Client CPU seconds from `start` to `stop` and, given a server pid, the CPU seconds and
    the peak summed RSS and PSS of the server's process tree, sampled every 50 ms by a thread
    whose own CPU time is not counted as the client's."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)
        self._tree: set[int] = set()
        self._first_ticks: dict[int, int] = {}
        self._last_ticks: dict[int, int] = {}
        self._peak_kib = [0] * len(MEMORY)
        self._sampler_cpu_s = 0.0
        self._client_cpu_s = 0.0

    def start(self) -> None:
        if self.server_pid is not None:
            self._tree = process_tree(self.server_pid)
            self._sample()
            self._first_ticks = dict(self._last_ticks)
            self._thread.start()
        self._client_cpu_s = time.process_time()

    def stop(self) -> dict[str, Any]:
        """The figures: `client_cpu_s`; with a server, `server_cpu_s` and the peaks
        `server_rss_peak_mb` and `server_pss_peak_mb` (in MiB)."""
        client_cpu_s = time.process_time() - self._client_cpu_s
        if self.server_pid is None:
            return {"client_cpu_s": round(client_cpu_s, 2)}
        self._stopping.set()
        self._thread.join()
        self._sample()
        ticks = sum(last - self._first_ticks.get(pid, 0) for pid, last in self._last_ticks.items())
        return {
            "client_cpu_s": round(max(client_cpu_s - self._sampler_cpu_s, 0.0), 2),
            "server_cpu_s": round(ticks * TICK_S, 2),
            **{
                f"server_{name.lower()}_peak_mb": round(kib / KIB_PER_MIB, 1)
                for name, kib in zip(MEMORY, self._peak_kib, strict=True)
            },
        }

    def _sample_until_stopped(self) -> None:
        count = 0
        while not self._stopping.wait(SAMPLE_INTERVAL_S):
            count += 1
            if count % TREE_EVERY == 0 and self.server_pid is not None:
                self._tree = process_tree(self.server_pid)  # a respawned worker joins
            self._sample()
        self._sampler_cpu_s = time.thread_time()

    def _sample(self) -> None:
        total = [0] * len(MEMORY)
        for pid in list(self._tree):
            fields, memory = _stat(pid), _memory_kib(pid)
            if fields is None or memory is None:
                self._tree.discard(pid)  # its CPU time up to its last sample still counts
                continue
            self._last_ticks[pid] = int(fields[UTIME]) + int(fields[STIME])
            total = [t + m for t, m in zip(total, memory, strict=True)]
        self._peak_kib = [max(p, t) for p, t in zip(self._peak_kib, total, strict=True)]
