"""Credentials sealed to the executor's public key: only the executor can open them.

X25519 key agreement with an ephemeral key, HKDF-SHA256, AES-256-GCM. The associated data binds
a sealed credential to its org and integration, so it cannot be replayed elsewhere.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_PREFIX = "apseal1"
_RAW = serialization.Encoding.Raw


class SealError(Exception):
    """A sealed value could not be opened (wrong key, tampered, or bound to another context)."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(shared: bytes, eph_pub: bytes, recipient_pub: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + recipient_pub, info=b"agentport-seal-v1").derive(
        shared
    )


def public_key_text(private: X25519PrivateKey) -> str:
    """The public half, as text that can be published."""
    return _b64(private.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw))


def private_key_from_text(text: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(_unb64(text.strip()))


def private_key_text(private: X25519PrivateKey) -> str:
    return _b64(private.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()))


def load_or_create_private_key(path: Path) -> X25519PrivateKey:
    """Read the executor's key from `path`, creating it (mode 0600) on first start."""
    if path.exists():
        return private_key_from_text(path.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = X25519PrivateKey.generate()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(private_key_text(key))
    return key


def seal(recipient_public: str, plaintext: str, context: str) -> str:
    """Encrypt `plaintext` so only the holder of the matching private key can read it."""
    recipient = _unb64(recipient_public)
    eph = X25519PrivateKey.generate()
    eph_pub = eph.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    key = _derive(eph.exchange(X25519PublicKey.from_public_bytes(recipient)), eph_pub, recipient)
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext.encode(), context.encode())
    return f"{_PREFIX}.{_b64(eph_pub)}.{_b64(nonce)}.{_b64(ciphertext)}"


def open_sealed(private: X25519PrivateKey, sealed: str, context: str) -> str:
    """Decrypt a value produced by `seal` for this key and context."""
    try:
        prefix, eph_text, nonce_text, ct_text = sealed.split(".")
        if prefix != _PREFIX:
            raise SealError("unknown sealed format")
        eph_pub = _unb64(eph_text)
        recipient_pub = private.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
        key = _derive(private.exchange(X25519PublicKey.from_public_bytes(eph_pub)), eph_pub, recipient_pub)
        return AESGCM(key).decrypt(_unb64(nonce_text), _unb64(ct_text), context.encode()).decode()
    except (ValueError, InvalidTag) as exc:
        raise SealError("the sealed credential cannot be opened with this executor's key") from exc


def seal_context(org_id: str, integration_id: str) -> str:
    """What a sealed credential is bound to."""
    return f"{org_id}/{integration_id}"
