"""Child processes of a bench run: start, wait for, measure (from /proc) and stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (not idle, not iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of `pid` in MiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """Direct children of `pid`."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@dataclass
class Proc:
    """A started child process with a role ("web", "worker", "provider") and its log file."""

    role: str
    popen: subprocess.Popen[bytes]
    log: Path
    pids: list[int] = field(default_factory=list)

    def measured_pids(self) -> list[int]:
        # uvicorn --workers N forks children: the work happens there.
        return [self.popen.pid, *children(self.popen.pid)]

    def cpu(self) -> float:
        return sum(cpu_seconds(p) for p in self.measured_pids())

    def peak_rss(self) -> float:
        return max((peak_rss_mb(p) for p in self.measured_pids()), default=0.0)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Processes:
    """Starts processes in their own session and stops all of them, whatever happens."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[Proc] = []

    def start(
        self, role: str, args: list[str], *, cwd: Path, env: dict[str, str], name: str
    ) -> Proc:
        log = self.log_dir / f"{name}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        handle.close()
        proc = Proc(role, popen, log)
        self.procs.append(proc)
        return proc

    def by_role(self, role: str) -> list[Proc]:
        return [p for p in self.procs if p.role == role]

    def cpu(self, role: str) -> float:
        return sum(p.cpu() for p in self.by_role(role))

    def peak_rss(self, role: str) -> float:
        return max((p.peak_rss() for p in self.by_role(role)), default=0.0)

    def stop(self, proc: Proc, timeout: float = 10) -> None:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGTERM)
            try:
                proc.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def wait_for_http(url: str, proc: Proc, timeout: float = 60) -> None:
    """Return once `url` answers below 500; raise with the log tail if `proc` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.role} exited early:\n{proc.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s:\n{proc.tail()}")
