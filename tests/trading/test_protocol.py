"""The wire rules both sides share, against MetaQuotes' published test vectors."""

from __future__ import annotations

import pytest

from app.trading import credentials
from app.trading import platform as p
from app.trading.mt5 import protocol


def test_the_password_hash_matches_the_published_vector() -> None:
    assert protocol.password_hash("Password1").hex() == "904ba8ecb16273d2f0ae9c3b8a023752"


def test_the_server_and_client_answers_match_the_published_vectors() -> None:
    ph = protocol.password_hash("Password1")
    assert protocol.rand_answer(ph, "73007dc7184747ce0f7c98516ef1c851") == "77fe51827f7fa69dd80fbec9aa33f1bb"
    assert protocol.rand_answer(ph, "4db98fec17aab4dc5a240bdc659e8395") == "1732021b1b332f51660b2b315eed3a35"


@pytest.mark.parametrize(
    ("raw", "code"), [("0 Done", 0), ("10019 Not enough money", 10019), ("3006", 3006), (" 13 Not found", 13)]
)
def test_it_reads_the_leading_integer_of_a_retcode(raw: str, code: int) -> None:
    assert protocol.parse_retcode(raw) == code


@pytest.mark.parametrize("raw", ["Done", "", None, 0])
def test_it_refuses_a_retcode_without_a_leading_integer(raw: object) -> None:
    with pytest.raises(ValueError):
        protocol.parse_retcode(raw)


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (3004, p.Duplicate),
        (3006, p.WeakPassword),
        (10019, p.NotEnoughMoney),
        (13, p.NotFound),
        (8, p.PermissionDenied),
        (1008, p.AuthFailed),
        (4005, p.InvalidRequest),
        (12, p.Busy),
        (9999, p.PlatformError),
    ],
)
def test_each_retcode_becomes_a_typed_error_with_a_message_for_people(code: int, cls: type) -> None:
    err = protocol.error_for(code, "trade/balance")
    assert type(err) is cls
    assert err.code == code and err.command == "trade/balance"
    assert str(code) in err.message or len(err.message) > 20


def test_a_manager_password_round_trips_and_is_bound_to_its_server(settings) -> None:
    blob = credentials.encrypt("Manager#2026", "MT5 Live")
    assert b"Manager#2026" not in blob
    assert credentials.decrypt(blob, "MT5 Live") == "Manager#2026"
    with pytest.raises(credentials.CredentialError):
        credentials.decrypt(blob, "MT5 Demo")
