"""Node and npm for the tests that run the AI SDK's own code (pinned by package-lock files).

`npm_installed(directory)` runs `npm ci` there when its `node_modules` is missing or older than
its `package-lock.json`: a fresh machine (CI) installs the locked versions from the npm registry
once, later runs reuse them.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def node() -> str:
    """The `node` executable (the test is skipped without one)."""
    found = shutil.which("node")
    if found is None:  # pragma: no cover - bin/system-deps installs it
        pytest.skip("node is not installed (bin/system-deps installs it)")
    return found


@functools.cache
def npm_installed(directory: Path) -> Path:
    """`directory` with its locked packages installed; returns `directory`."""
    lock = directory / "package-lock.json"
    marker = directory / "node_modules" / ".package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return directory
    npm = shutil.which("npm")
    if npm is None:  # pragma: no cover - bin/system-deps installs it
        pytest.skip("npm is not installed (bin/system-deps installs it)")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"npm ci in {directory} failed:\n{done.stdout}{done.stderr}"
    return directory
