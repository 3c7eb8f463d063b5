"""Credentials sealed for the executor open only with its key and only in their own context."""

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from shared.sealing import (
    SealError,
    load_or_create_private_key,
    open_sealed,
    public_key_text,
    seal,
    seal_context,
)


def test_sealed_credential_opens_with_the_executor_key() -> None:
    key = X25519PrivateKey.generate()
    sealed = seal(public_key_text(key), "ghp_secret", seal_context("org", "github"))
    assert "ghp_secret" not in sealed
    assert open_sealed(key, sealed, seal_context("org", "github")) == "ghp_secret"


def test_sealing_twice_gives_different_ciphertexts() -> None:
    key = X25519PrivateKey.generate()
    assert seal(public_key_text(key), "x", "c") != seal(public_key_text(key), "x", "c")


def test_another_key_or_context_cannot_open_it() -> None:
    key, other = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    sealed = seal(public_key_text(key), "ghp_secret", seal_context("org-a", "github"))
    with pytest.raises(SealError):
        open_sealed(other, sealed, seal_context("org-a", "github"))
    with pytest.raises(SealError):
        open_sealed(key, sealed, seal_context("org-b", "github"))
    with pytest.raises(SealError):
        open_sealed(key, sealed[:-4] + "AAAA", seal_context("org-a", "github"))


def test_key_file_is_created_private_and_reused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "executor.key"
    first = load_or_create_private_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert public_key_text(load_or_create_private_key(path)) == public_key_text(first)
