"""The executor's key pair: the only place a sealed credential can be opened."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from shared.bus import Bus
from shared.sealing import load_or_create_private_key, private_key_from_text, public_key_text
from shared.settings import ExecutorSettings

PUBLIC_KEY_BUCKET = "keys"
PUBLIC_KEY_NAME = "executor"


def load_private_key(settings: ExecutorSettings) -> X25519PrivateKey:
    """From AGENTPORT_EXECUTOR_PRIVATE_KEY, else a key file created under the data directory."""
    if settings.executor_private_key is not None:
        return private_key_from_text(settings.executor_private_key.get_secret_value())
    return load_or_create_private_key(settings.data_dir / "executor.key")


async def publish_public_key(bus: Bus, key: X25519PrivateKey) -> None:
    """Let gateways find the key to seal credentials to."""
    kv = await bus.kv(PUBLIC_KEY_BUCKET)
    await kv.put(PUBLIC_KEY_NAME, public_key_text(key).encode())
