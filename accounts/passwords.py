"""Password hashing: argon2id (argon2-cffi's RFC 9106 low-memory profile).

The hasher is the module attribute :data:`HASHER`, read at each call, so tests may
swap in cheaper parameters (and so a hash made with other parameters is flagged by
:func:`needs_rehash` and upgraded at the next successful login).
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
# Hashing cost grows with the input: an upper bound keeps a login request cheap.
MAX_LENGTH = 1024

HASHER = PasswordHasher()  # argon2id, time_cost=3, memory_cost=64 MiB, parallelism=4

# Hash of a throw-away password per hasher, verified against when there is no user,
# so that "unknown user" and "wrong password" take about the same time.
_dummy_hashes: dict[int, str] = {}


class PasswordPolicyError(ValueError):
    """The password is not acceptable (too short or too long)."""


def check_password(password: str) -> None:
    """Raise :class:`PasswordPolicyError` unless ``password`` meets the policy."""
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(
            f"password too short: {len(password)} characters, at least {MIN_LENGTH} needed"
        )
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"password too long: at most {MAX_LENGTH} characters")


def hash_password(password: str, *, check: bool = True) -> str:
    """The argon2id hash of ``password`` (policy checked unless ``check`` is False)."""
    if check:
        check_password(password)
    return HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; a malformed hash never matches."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than :data:`HASHER`'s."""
    try:
        return HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


def dummy_verify(password: str) -> None:
    """Spend the time of one verification, for a user that does not exist."""
    key = id(HASHER)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = HASHER.hash(secrets.token_urlsafe(16))
    verify_password(_dummy_hashes[key], password)


def generate_password(nbytes: int = 16) -> str:
    """A random password (``nbytes`` of entropy, URL-safe: 22 characters for 16)."""
    return secrets.token_urlsafe(nbytes)
