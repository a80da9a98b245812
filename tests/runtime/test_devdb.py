"""The throwaway cluster: usable, removed by `stop()`, and removed when its owner dies."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psycopg

from django_ai_chat.dev import devdb


def _wait_until_gone(path: Path, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return not path.exists()


def test_a_cluster_serves_its_database_until_stopped() -> None:
    cluster = devdb.start("probe")
    try:
        with psycopg.connect(cluster.url) as conn:
            assert conn.execute("select current_database()").fetchone() == ("probe",)
    finally:
        cluster.stop()
    assert not cluster.data_dir.exists()
    cluster.stop()  # twice is harmless


def test_a_cluster_whose_owner_dies_without_stopping_it_is_removed() -> None:
    # The owner prints where its cluster lives, then dies abruptly (no atexit, no stop()).
    owner = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os; from django_ai_chat.dev import devdb; c = devdb.start('orphan'); "
            "print(c.data_dir, c.url, flush=True); os._exit(0)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    data_dir, url = owner.stdout.split()
    assert _wait_until_gone(Path(data_dir)), "the reaper left the orphaned cluster behind"
    try:
        psycopg.connect(url, connect_timeout=2).close()
    except psycopg.OperationalError:
        pass
    else:
        raise AssertionError("the orphaned server still accepts connections")
