"""The simulated chain as a real process for crypto tests (manual mining), and its test knobs."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from app.funding.providers import register
from app.funding.providers.simchain import SimChainProvider
from tests.servers import free_port


@pytest.fixture
def chain_url() -> Iterator[str]:
    """The chain simulator alone, as a real process (manual mining)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.funding.providers.sim.chain",
            "--port",
            str(port),
            "--block-seconds",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/chain/status", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the chain simulator did not start")
        time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def chain(chain_url: str, database) -> SimChainProvider:
    provider = SimChainProvider(chain_url)
    register(provider)
    return provider


def knob(chain: SimChainProvider, path: str, **body) -> dict:
    r = httpx.post(chain.base_url + path, json=body, timeout=5)
    r.raise_for_status()
    return r.json()
