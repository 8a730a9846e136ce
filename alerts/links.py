"""Signed evidence links: the URLs sent to dispatch targets open the evidence without
a login, for a limited time, and only for that alert and that file.

``/api/alerts/<id>/snapshot.jpg?expires=<epoch s>&sig=<hex>`` where ``sig`` is
HMAC-SHA256(key, "<id>:<kind>:<expires>"). The key is the hub's (``api.link_secret``,
or a random key kept in ``<data_dir>/link.key``); receivers need no account, a link
that leaks stops working when it expires, and no link opens another alert.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from core.secrets import same_text

KINDS = ("snapshot", "annotated_snapshot")


@dataclass(frozen=True)
class EvidenceLinks:
    base_url: str
    key: bytes
    ttl_s: float = 7 * 24 * 3600

    def _sig(self, alert_id: str, kind: str, expires: int) -> str:
        message = f"{alert_id}:{kind}:{expires}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()[:40]

    def url(self, alert_id: str, kind: str, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.ttl_s)
        query = f"expires={expires}&sig={self._sig(alert_id, kind, expires)}"
        if kind == "annotated_snapshot":
            query = "annotated=true&" + query
        return f"{self.base_url}/api/alerts/{alert_id}/snapshot.jpg?{query}"

    def verify(
        self, alert_id: str, kind: str, expires: int, sig: str, now: float | None = None
    ) -> bool:
        if expires < (time.time() if now is None else now):
            return False
        return same_text(self._sig(alert_id, kind, expires), sig)


def load_or_create_key(secret: str | None, path: Path) -> bytes:
    """The configured secret, else the key in ``path`` (created, owner-only, if missing)."""
    if secret:
        return secret.encode()
    if path.is_file():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    path.touch(mode=0o600)
    path.write_bytes(key)
    return key
