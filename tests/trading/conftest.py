"""A real MT5 simulator process per test (its own state file), and a trading server row that
points the CRM at it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import free_port

MANAGER_LOGIN = 1000
MANAGER_PASSWORD = "Manager#2026"


@dataclass
class Sim:
    host: str
    port: int
    state: Path
    proc: subprocess.Popen
    tls: bool = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    def control(self, **knobs: Any) -> dict[str, Any]:
        """Test knobs (latency_ms, drop_rate, error_rate, clock_offset_seconds, paused, trade_rate …)."""
        r = httpx.post(self.url + "/sim/control", json=knobs, timeout=10, verify=False)  # noqa: S501 (self-signed simulator)
        r.raise_for_status()
        return r.json()

    def status(self) -> dict[str, Any]:
        r = httpx.get(self.url + "/sim/status", timeout=10, verify=False)  # noqa: S501 (self-signed simulator)
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_sim(
    state: Path,
    *,
    tls: bool = False,
    seed: int = 1,
    trade_rate: float = 0.0,
    port: int = 0,
    extra: list[str] | None = None,
) -> Sim:
    """`fxcrm mt5-sim` as a real process; waits until it answers."""
    port = port or free_port()
    args = [
        sys.executable,
        "-m",
        "app",
        "mt5-sim",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--tls" if tls else "--no-tls",
        "--manager",
        f"{MANAGER_LOGIN}:{MANAGER_PASSWORD}",
        "--seed",
        str(seed),
        "--state",
        str(state),
        "--trade-rate",
        str(trade_rate),
        *(extra or []),
    ]
    log = open(state.with_suffix(".log"), "w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    sim = Sim("127.0.0.1", port, state, proc, tls)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"mt5-sim exited with {proc.returncode}: {state.with_suffix('.log').read_text()}"
            )
        try:
            sim.status()
            return sim
        except httpx.HTTPError:
            time.sleep(0.1)
    sim.stop()
    raise RuntimeError("mt5-sim did not start in 30 s")


@pytest.fixture
def mt5_sim(tmp_path: Path) -> Iterator[Sim]:
    sim = start_sim(tmp_path / "sim.sqlite3")
    try:
        yield sim
    finally:
        sim.stop()


async def make_trading_server(sim: Sim, *, name: str = "MT5 sim", pool_size: int = 2, timeout: int = 10):
    """A `TradingServer` row pointing at `sim`, its manager password encrypted as the console stores it."""
    from datetime import UTC, datetime

    from app.trading import credentials
    from app.trading.tables import TradingServer

    now = datetime.now(UTC)
    row = TradingServer(
        name=name,
        platform="mt5",
        address=sim.address,
        use_tls=sim.tls,
        verify_tls=False,
        manager_login=MANAGER_LOGIN,
        password_enc=credentials.encrypt(MANAGER_PASSWORD, name),
        active=True,
        timeout_seconds=timeout,
        pool_size=pool_size,
        created_at=now,
        updated_at=now,
    )
    await row.save()
    return row


@pytest.fixture
async def trading_server(settings, mt5_sim: Sim):
    """The `TradingServer` row for the `mt5_sim` fixture; platforms cached for it are closed afterwards."""
    from app.trading import connections

    row = await make_trading_server(mt5_sim)
    try:
        yield row
    finally:
        await connections.close_all()
