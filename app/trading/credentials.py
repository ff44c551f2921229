"""Manager passwords of trading servers at rest: AES-256-GCM, key derived from the document key
(so one secret to back up), the server's name as associated data so a ciphertext copied onto
another server's row does not decrypt."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.settings import get_settings

MAGIC = b"FXP1"


class CredentialError(RuntimeError):
    pass


def _aead() -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"fxcrm platform credentials v1").derive(
        get_settings().kyc.document_key
    )
    return AESGCM(key)


def encrypt(secret: str, server_name: str) -> bytes:
    nonce = os.urandom(12)
    return MAGIC + nonce + _aead().encrypt(nonce, secret.encode(), server_name.encode())


def decrypt(blob: bytes, server_name: str) -> str:
    blob = bytes(blob)
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 12 + 16:
        raise CredentialError("stored manager password is not in a known format")
    nonce, body = blob[4:16], blob[16:]
    try:
        return _aead().decrypt(nonce, body, server_name.encode()).decode()
    except InvalidTag:
        raise CredentialError(
            "stored manager password does not decrypt (DOCUMENT_KEY changed, or the row was copied)"
        ) from None
