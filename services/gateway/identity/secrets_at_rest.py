"""How the gateway keeps secrets: keys and session tokens only as a hash, other secrets (TOTP seeds) encrypted
with the gateway's secret key."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from pathlib import Path

from cryptography.fernet import Fernet

from shared.settings import GatewaySettings

KEY_FILE = "gateway-secret.key"


def token_hash(token: str) -> str:
    """Keys and session tokens are stored only as this hash."""
    return hashlib.sha256(token.encode()).hexdigest()


def secret_box(settings: GatewaySettings) -> Fernet:
    """The cipher for secrets at rest: from AGENTPORT_SECRET_KEY, else a key file made once in the data dir."""
    if settings.secret_key is not None:
        material = settings.secret_key.get_secret_value().encode()
    else:
        material = _key_file(settings.data_dir / KEY_FILE)
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(material).digest()))


def _key_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # Another replica may be writing it right now.
            data = path.read_bytes().strip()
            if data:
                return data
            time.sleep(0.02)
        raise
    key = secrets.token_urlsafe(48).encode()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key
