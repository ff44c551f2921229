"""KYC files at rest: outside `static/`, under random names, encrypted with AES-256-GCM.

Each file is `FXD1` + a 12-byte random nonce + ciphertext-and-tag. The file's own name is the
associated data, so a file copied over another one's name fails to decrypt instead of showing the
wrong person's passport. Only the authorised download handler calls `read`.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"FXD1"
_NAME = re.compile(r"^[0-9a-f]{32}$")


class StorageError(RuntimeError):
    pass


def derive_key(secret_key: str) -> bytes:
    """Development only: a document key derived from SECRET_KEY (production sets DOCUMENT_KEY)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"fxcrm kyc documents v1").derive(
        secret_key.encode()
    )


def parse_key(value: str) -> bytes:
    """DOCUMENT_KEY: 32 random bytes, base64 (standard or URL-safe); `fxcrm` prints a fresh one."""
    try:
        key = base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_") + "=" * (-len(value) % 4))
    except ValueError:
        raise StorageError("DOCUMENT_KEY is not base64") from None
    if len(key) != 32:
        raise StorageError("DOCUMENT_KEY must be 32 bytes (base64 of 32 random bytes)")
    return key


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")


class DocumentStore:
    def __init__(self, root: Path, key: bytes) -> None:
        self.root = root
        self._aead = AESGCM(key)

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise StorageError("not a document name")
        return self.root / name[:2] / name

    def write(self, content: bytes) -> str:
        """Store `content` under a new random name; returns the name (what the database keeps)."""
        name = secrets.token_hex(16)
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        nonce = os.urandom(12)
        blob = MAGIC + nonce + self._aead.encrypt(nonce, content, name.encode())
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return name

    def read(self, name: str) -> bytes:
        try:
            blob = self._path(name).read_bytes()
        except FileNotFoundError:
            raise StorageError(f"document {name} is missing") from None
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 12 + 16:
            raise StorageError(f"document {name} is not an fxcrm document file")
        nonce, sealed = blob[4:16], blob[16:]
        try:
            return self._aead.decrypt(nonce, sealed, name.encode())
        except InvalidTag:
            raise StorageError(f"document {name} failed its integrity check") from None

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)
