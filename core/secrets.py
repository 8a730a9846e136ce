"""Encryption of stored secrets (camera passwords) with a key kept outside the database.

The key comes from ``SHAOBING_SECRET_KEY`` or from ``<data_dir>/secret.key``, created
0600 on first use. A database copied off the server (a backup, a support bundle) then
holds no usable camera password without that key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

ENV_KEY = "SHAOBING_SECRET_KEY"
#: Marks an encrypted value, so plain values written by older versions still read.
PREFIX = "enc:v1:"


class SecretError(ValueError):
    """A stored secret that cannot be decrypted (the key changed or the value is damaged)."""


def _fernet_key(text: str) -> bytes:
    """A Fernet key from ``text``: used as is when it is one, else derived (SHA-256),
    so an operator may set any long random string."""
    raw = text.strip().encode()
    try:
        Fernet(raw)
        return raw
    except ValueError:
        return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


class SecretCipher:
    """Encrypts and decrypts short strings; encrypted values carry :data:`PREFIX`."""

    def __init__(self, key: str | bytes) -> None:
        self._key = _fernet_key(key.decode() if isinstance(key, bytes) else key)
        self._fernet = Fernet(self._key)

    def derive(self, purpose: str) -> bytes:
        """A key for ``purpose`` (HMAC-SHA256 of the purpose under this key): processes
        that share the camera-password key share it, and it reveals nothing of that key."""
        return hmac.new(self._key, f"shaobing:{purpose}".encode(), hashlib.sha256).digest()

    @staticmethod
    def new_key() -> str:
        """A new random key (what ``secret.key`` holds)."""
        return Fernet.generate_key().decode()

    @staticmethod
    def is_encrypted(value: str) -> bool:
        return value.startswith(PREFIX)

    def encrypt(self, value: str) -> str:
        if self.is_encrypted(value):
            return value  # never wrap twice
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, value: str) -> str:
        """The plain value; a value without the prefix (an older record) is returned as is."""
        if not self.is_encrypted(value):
            return value
        try:
            return self._fernet.decrypt(value[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise SecretError(
                f"a stored secret cannot be decrypted with this key ({ENV_KEY} or the key "
                "file changed?); import the camera again or restore the key"
            ) from None


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and its parents) with the leaf readable by the owner only (0700).

    An existing directory keeps its mode: the operator may have chosen it.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def load_or_create_cipher(key_file: Path) -> SecretCipher:
    """The cipher of ``SHAOBING_SECRET_KEY``, else of ``key_file`` (created 0600)."""
    env = os.environ.get(ENV_KEY)
    if env and env.strip():
        return SecretCipher(env)
    if not key_file.exists():
        make_private_dir(key_file.parent)
        try:
            # O_EXCL: two processes starting at once must not write two different keys.
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(SecretCipher.new_key())
    return SecretCipher(key_file.read_bytes())


def same_text(expected: str, received: str) -> bool:
    """Constant-time comparison of two texts of any characters (``hmac.compare_digest``
    raises TypeError on a non-ASCII ``str``: a forged signature would be a 500)."""
    return hmac.compare_digest(expected.encode(), received.encode("utf-8", "surrogatepass"))
