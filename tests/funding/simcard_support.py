"""Fixtures for tests that need the payment simulator and the app as real HTTP servers.

`pay_sim`: `fxcrm pay-sim` as its own process (state in a temporary SQLite file), with the
`simcard` provider registered against it; its knobs are reset for every test.
`app_server`: the application served by uvicorn on a free port inside the test's event loop (so it
shares the test's database pool), and the simulator's webhooks pointed at it.
Import them into a test module: `from tests.funding.simcard_support import app_server, pay_sim`.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.funding.providers import base
from app.funding.providers.sim.store import DEFAULT_KNOBS
from app.funding.providers.simcard import SimCardProvider
from app.settings import load_settings
from tests.conftest import ROOT, SECRET
from tests.servers import free_port

SUCCEEDS, DECLINED, NO_FUNDS = "4242424242424242", "4000000000000002", "4000000000009995"


@dataclass
class PaySim:
    url: str
    api_key: str
    webhook_secret: str
    proc: subprocess.Popen
    state: Path
    after_id: int = 0  # deliveries of earlier tests are not this test's

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"}

    async def control(self, **knobs: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url, headers=self.headers(), timeout=10) as http:
            r = await http.post("/sim/control", json=knobs)
            r.raise_for_status()
            return r.json()

    async def deliveries(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.url, headers=self.headers(), timeout=10) as http:
            items = (await http.get("/sim/deliveries")).json()["items"]
        return [d for d in items if d["id"] > self.after_id]

    async def settled(self, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait until no delivery is still to be retried; the deliveries."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = await self.deliveries()
            if all(
                d["delivered_at"] is not None or d["last_error"] in ("dropped", "no webhook_url")
                for d in items
            ):
                return items
            await asyncio.sleep(0.1)
        raise AssertionError(f"webhooks still undelivered after {timeout}s: {await self.deliveries()}")

    async def pay(self, hosted_url: str, number: str = SUCCEEDS, expiry: str = "12/39") -> httpx.Response:
        """What the browser does on the hosted page: fill in the card and submit (no redirect followed)."""
        async with httpx.AsyncClient(timeout=10) as http:
            page = await http.get(hosted_url)
            assert page.status_code == 200 and 'name="card_number"' in page.text
            return await http.post(
                hosted_url, data={"card_number": number, "expiry": expiry, "name": "Ada Client"}
            )


def start_pay_sim(state: Path, port: int | None = None) -> PaySim:
    port = port or free_port()
    env = {**os.environ, "SECRET_KEY": SECRET, "APP_ENV": "development", "FXCRM_VAR_DIR": str(state.parent)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "pay-sim", "--port", str(port), "--state", str(state)],
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pay-sim exited with {proc.returncode}")
        try:
            if httpx.get(url + "/sim/status", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.terminate()
        raise RuntimeError("pay-sim did not start")
    pay = load_settings(
        {"SECRET_KEY": SECRET, "APP_ENV": "development", "FXCRM_VAR_DIR": str(state.parent)}
    ).payments
    return PaySim(url, pay.sim_api_key, pay.webhook_secret, proc, state)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def _pay_sim_process(tmp_path_factory) -> Iterator[PaySim]:
    sim = start_pay_sim(tmp_path_factory.mktemp("paysim") / "pay-sim.sqlite3")
    yield sim
    stop(sim.proc)


@pytest.fixture
async def pay_sim(_pay_sim_process: PaySim) -> AsyncIterator[PaySim]:
    sim = _pay_sim_process
    await sim.control(**{**DEFAULT_KNOBS, "retry_base": 0.2})
    sim.after_id = 0
    sim.after_id = max((d["id"] for d in await sim.deliveries()), default=0)
    previous = base.registered().get("simcard")
    base.register(SimCardProvider(sim.url, sim.api_key, sim.webhook_secret))
    yield sim
    await sim.control(webhook_url="")
    if previous is not None:
        base.register(previous)


@dataclass
class AppServer:
    url: str


@pytest.fixture
async def app_server(app, pay_sim: PaySim) -> AsyncIterator[AppServer]:
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    await pay_sim.control(webhook_url=f"{url}/api/funding/webhooks/simcard")
    yield AppServer(url)
    await pay_sim.control(webhook_url="")
    server.should_exit = True
    await task
