"""Reader PINs: drawn at random, shown once, stored only as a salted scrypt hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from softmass_core.errors import StoreError

# --- PINs ---------------------------------------------------------------------------

#: Characters of a PIN: digits and capitals without the look-alikes 0/O, 1/I/L.
PIN_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
#: Characters in a PIN (31**8, about 8.5e11 PINs: guessing through the page is hopeless).
PIN_LENGTH = 8
# scrypt cost (RFC 7914's interactive-login setting): about 0.1-0.2 s per check on one core.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def new_pin() -> str:
    """A fresh random PIN, e.g. ``"K7QF-93MD"`` (``PIN_LENGTH`` characters of ``PIN_ALPHABET``, a dash in the middle)."""
    chars = "".join(secrets.choice(PIN_ALPHABET) for _ in range(PIN_LENGTH))
    return f"{chars[: PIN_LENGTH // 2]}-{chars[PIN_LENGTH // 2 :]}"


def normalise_pin(pin: Any) -> str:
    """A PIN as typed -> its canonical characters: capitals, no spaces or dashes; StoreError if malformed."""
    if not isinstance(pin, str):
        raise StoreError("Enter your PIN (the 8 characters shown when you registered).")
    text = "".join(pin.split()).replace("-", "").upper()
    if len(text) != PIN_LENGTH or any(ch not in PIN_ALPHABET for ch in text):
        raise StoreError(
            f"A PIN has {PIN_LENGTH} letters and digits, as shown when you registered (e.g. K7QF-93MD): "
            "check what you typed."
        )
    return text


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(pin.encode("ascii"), salt=salt, n=n, r=r, p=p, maxmem=128 * r * (n + p + 2), dklen=32)


def _hash_pin(pin: str) -> str:
    """``scrypt$n$r$p$salt$digest`` (hex) of the normalised ``pin``, with a fresh 16-byte salt."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(normalise_pin(pin), salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def _pin_matches(pin: str, stored: str) -> bool:
    """Whether ``pin`` (normalised) hashes to ``stored``; compared in constant time."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        got = _scrypt(pin, bytes.fromhex(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


@dataclass(frozen=True)
class Registration:
    """A newly registered reader: their id and PIN (shown to them once, stored only as a hash)."""

    reader_id: int
    pin: str
