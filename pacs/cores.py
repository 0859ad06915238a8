"""How many cores this process may use: the CPUs it may run on (its affinity, a cpuset) and,
in a container, its cgroup v2 CPU quota (`docker run --cpus 2`), whichever is fewer; the
default for worker processes and for threads doing pixel work."""

import math
import os
from pathlib import Path

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # "QUOTA PERIOD", or "max PERIOD" for no limit


def usable_cores(cpu_max: Path = CPU_MAX) -> int:
    """The cores this process may keep busy, at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 here, or a limit we cannot read: the CPUs decide
    return max(1, cores)
