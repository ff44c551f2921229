"""A deliberately independent MT5 Web API client for testing the simulator as a third party
would: raw httpx, one connection per session, the hash computed here from the published
construction (not from app code)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import httpx

from tests.trading.conftest import MANAGER_LOGIN, MANAGER_PASSWORD, Sim

STRONG = "Strong#Pass1"
INVESTOR = "Invest0r#Pw"
ALL_TIME = {"from": "0", "to": "4102444800"}


def password_hash(password: str) -> bytes:
    p1 = hashlib.md5(password.encode("utf-16-le"), usedforsecurity=False).digest()
    return hashlib.md5(p1 + b"WebAPI", usedforsecurity=False).digest()


def rand_answer(ph: bytes, rand_hex: str) -> str:
    return hashlib.md5(ph + bytes.fromhex(rand_hex), usedforsecurity=False).hexdigest()


def retcode(payload: dict[str, Any]) -> int:
    return int(payload["retcode"].split(" ", 1)[0])


class MT5:
    """One MT5 session = one keep-alive connection."""

    def __init__(self, sim: Sim, *, timeout: float = 10.0) -> None:
        self.http = httpx.Client(
            base_url=sim.url,
            verify=False,  # noqa: S501 (the simulator's self-signed certificate)
            timeout=timeout,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    def __enter__(self) -> MT5:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def raw(self, command: str, body: Any = None, **params: Any) -> httpx.Response:
        params = {k.rstrip("_"): str(v) for k, v in params.items()}
        if body is None:
            return self.http.get(f"/api/{command}", params=params)
        return self.http.post(f"/api/{command}", params=params, json=body)

    def call(self, command: str, body: Any = None, **params: Any) -> dict[str, Any]:
        return self.raw(command, body, **params).json()

    def ok(self, command: str, body: Any = None, **params: Any) -> Any:
        payload = self.call(command, body, **params)
        assert retcode(payload) == 0, (command, payload)
        return payload.get("answer")

    def code(self, command: str, body: Any = None, **params: Any) -> int:
        return retcode(self.call(command, body, **params))

    def login(self, login: int = MANAGER_LOGIN, password: str = MANAGER_PASSWORD) -> dict[str, Any]:
        start = self.call("auth/start", version=484, agent="thirdparty", login=login, type="manager")
        assert retcode(start) == 0, start
        ph = password_hash(password)
        cli_rand = os.urandom(16).hex()
        answer = self.call(
            "auth/answer", srv_rand_answer=rand_answer(ph, start["srv_rand"]), cli_rand=cli_rand
        )
        if retcode(answer) == 0:
            assert answer["cli_rand_answer"] == rand_answer(ph, cli_rand), "the server failed mutual auth"
        return answer

    def add_user(self, group: str = "real\\standard-usd", **fields: Any) -> int:
        body = {"PassMain": STRONG, "PassInvestor": INVESTOR, **fields}
        payload = self.call("user/add", body, group=group)
        assert retcode(payload) == 0, payload
        return int(payload["login"])

    def deposit(self, login: int, amount: str, comment: str = "", type_: int = 2, **extra: Any) -> int:
        answer = self.ok("trade/balance", login=login, type=type_, balance=amount, comment=comment, **extra)
        return int(answer["Ticket"])


def session(sim: Sim) -> MT5:
    mt5 = MT5(sim)
    assert retcode(mt5.login()) == 0
    return mt5
