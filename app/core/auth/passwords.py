"""Argon2id hashing and the password policy shared by every portal."""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher(
    time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16, type=Type.ID
)

# A dummy hash verified when the account does not exist, so timing does not reveal which
# e-mail addresses have accounts.
_DUMMY = _hasher.hash("not-a-real-password-just-for-timing")

COMMON = {
    "password",
    "password1",
    "password123",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "iloveyou",
    "letmein123",
    "welcome123",
    "admin12345",
    "passw0rd",
    "qwerty123",
    "trustno1",
    "11111111",
    "abc123456",
    "football",
    "baseball",
    "monkey123",
    "dragon123",
    "sunshine1",
    "princess1",
    "changeme",
    "changeme123",
    "forex12345",
    "trading123",
}

MIN_LENGTH = 10


def configure(memory_kib: int, time_cost: int, parallelism: int) -> None:
    """Raise the cost parameters (existing hashes are upgraded at their next login)."""
    global _hasher
    _hasher = PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_kib,
        parallelism=parallelism,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    if not stored:
        try:
            _hasher.verify(_DUMMY, password)
        except VerificationError:
            pass
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def password_problem(password: str, email: str = "") -> str | None:
    """A clear reason the password is too weak, or None."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > 256:
        return "Use at most 256 characters."
    lowered = password.lower()
    if lowered in COMMON or len(set(password)) < 4:
        return "This password is too easy to guess; choose a less common one."
    local = email.split("@")[0].lower()
    if local and len(local) >= 4 and local in lowered:
        return "Do not use your e-mail address in your password."
    return None
