"""The machine a benchmark ran on, and the resident memory of each process of the stack."""

from __future__ import annotations

import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import psutil


def describe() -> dict[str, str]:
    cpu_model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("rasa", "rasa-sdk", "python-socketio", "aiohttp"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": cpu_model,
        "memory_gib": f"{psutil.virtual_memory().total / 2**30:.1f}",
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        **versions,
    }


def core_speed_ms() -> float:
    """Milliseconds one core takes for a fixed pure-Python workload, best of five.

    Recorded with each run. It tells a slower core apart, not every slowdown of this
    virtual machine: the load and the bare Rasa baseline have run twice as fast at one
    hour as at another with the same figure.
    """
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        sum(i * i % 7 for i in range(1_000_000))
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def resident_mib(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """RSS in MiB per named process, its children included (a shell wrapper holds none)."""
    sizes = {}
    for name, process in processes.items():
        try:
            family = [process, *process.children(recursive=True)]
            sizes[name] = sum(member.memory_info().rss for member in family) / 2**20
        except psutil.Error:
            sizes[name] = 0.0
    return sizes
