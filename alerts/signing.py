"""HMAC-SHA256 signatures on dispatched alerts (for senders and receivers)."""

from __future__ import annotations

import hashlib
import hmac

from core.secrets import same_text

SIGNATURE_HEADER = "X-Shaobing-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(body: bytes, secret: str) -> str:
    """Header value ``sha256=<hex>`` of HMAC-SHA256(secret, body)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(body: bytes, secret: str, header_value: str | None) -> bool:
    """Constant-time check of a received signature header against the raw body."""
    if not header_value:
        return False
    return same_text(sign(body, secret), header_value.strip())
