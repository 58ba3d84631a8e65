"""kill -9 in the middle of a load loses nothing acknowledged and leaves a ledger that verifies."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gardien.audit.models import EVENTS
from gardien.audit.service import Ledger
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from tests.conftest import make_key, sample_event

CONCURRENCY = 16


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(runtime: Runtime, port: int, log: Path) -> subprocess.Popen[bytes]:
    settings = runtime.settings
    env = {
        **os.environ,
        "GARDIEN_DATABASE_URL": settings.database_url,
        "GARDIEN_KEYS_DIR": str(settings.keys_dir),
        "GARDIEN_EXPORTS_DIR": str(settings.exports_dir),
        "GARDIEN_INSTANCE_NAME": settings.instance_name,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gardien", "serve", "--port", str(port)], env=env, stdout=out, stderr=out
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
        if process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"gardien serve did not start: {log.read_text()[-2000:]}")


async def _load(base: str, token: str, acknowledged: list[dict[str, object]], stop: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:

        async def worker(number: int) -> None:
            sent = 0
            while not stop.is_set():
                try:
                    response = await client.post(
                        "/api/v1/audit/events", json=sample_event(fields={"w": number, "n": sent})
                    )
                except httpx.TransportError:
                    return  # the server is gone; whatever was in flight was never acknowledged
                sent += 1
                if response.status_code == 201:
                    acknowledged.append(response.json())

        await asyncio.gather(*(worker(n) for n in range(CONCURRENCY)))


@pytest.mark.slow
def test_kill_9_mid_load_loses_nothing_acknowledged(runtime: Runtime, ledger: Ledger, org: str, tmp_path: Path) -> None:
    token = make_key(runtime, org, Role.SERVICE)
    port = _free_port()
    server = _start_server(runtime, port, tmp_path / "server.log")
    acknowledged: list[dict[str, object]] = []
    stop = threading.Event()
    loader = threading.Thread(target=lambda: asyncio.run(_load(f"http://127.0.0.1:{port}", token, acknowledged, stop)))
    loader.start()
    try:
        deadline = time.monotonic() + 20
        while len(acknowledged) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(server.pid, signal.SIGKILL)  # mid-load: requests are in flight and batches half-formed
        server.wait(10)
    finally:
        stop.set()
        loader.join(30)
        if server.poll() is None:
            server.kill()
    assert len(acknowledged) >= 300, (tmp_path / "server.log").read_text()[-2000:]

    with runtime.engine.connect() as conn:
        stored = dict(conn.execute(select(EVENTS.c.id, EVENTS.c.seq).where(EVENTS.c.org_id == org)).all())
    lost = [a for a in acknowledged if stored.get(str(a["id"])) != a["seq"]]
    assert not lost, f"{len(lost)} acknowledged events lost or moved, e.g. {lost[:3]}"
    assert len(stored) >= len(acknowledged)
    assert sorted(stored.values()) == list(range(len(stored))), "the sequence has gaps"

    report = ledger.verify(org)
    assert report.status == "ok", report.findings

    # The ledger carries on where it stopped: the next append chains onto the crashed tail.
    size = ledger.head_size(org)  # verify recorded itself in the ledger, after the stored events
    assert size > len(stored)
    sealed = ledger.append(org, sample_event())
    assert sealed.seq == size
    assert ledger.verify(org).status == "ok"
