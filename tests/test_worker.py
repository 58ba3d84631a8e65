"""`gardien worker` seals the tail of a ledger that nothing else is appending to or serving."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gardien.audit.service import Ledger
from gardien.core.errors import NotFound
from gardien.core.runtime import Runtime
from tests.conftest import sample_event


def _latest_size(ledger: Ledger, org: str) -> int:
    try:
        return ledger.checkpoint(org).size
    except NotFound:
        return 0


def test_the_worker_checkpoints_an_idle_tail_within_seconds(runtime: Runtime, org: str, tmp_path: Path) -> None:
    # An appender that would wait an hour before checkpointing by itself: only the worker seals.
    patient = Runtime.start(runtime.settings.model_copy(update={"checkpoint_every_seconds": 3600.0}))
    ledger = Ledger(patient)
    ledger.append_batch(org, [sample_event() for _ in range(5)])
    ledger.checkpoint_now(org)
    ledger.append_batch(org, [sample_event() for _ in range(3)])
    assert _latest_size(ledger, org) == 5
    settings = runtime.settings
    env = {
        **os.environ,
        "GARDIEN_DATABASE_URL": settings.database_url,
        "GARDIEN_KEYS_DIR": str(settings.keys_dir),
        "GARDIEN_INSTANCE_NAME": settings.instance_name,
        "GARDIEN_CHECKPOINT_EVERY_SECONDS": "0.2",
    }
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen([sys.executable, "-m", "gardien", "worker"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while _latest_size(ledger, org) < 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _latest_size(ledger, org) == 8, (tmp_path / "worker.log").read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0, (tmp_path / "worker.log").read_text()
    assert ledger.verify(org).status == "ok"
    patient.close()
