"""CURVE key files: made by ``sz keys generate``, read by the broker and workers.

The format is libzmq's ZPL certificate, written and read by pyzmq's
``zmq.auth``: ``NAME.key`` holds the public key (give it to the other side),
``NAME.key_secret`` both (keep it private; it is written readable by its owner
only).
"""

from __future__ import annotations

import os
from pathlib import Path

import zmq.auth

from .errors import KeyFileError

__all__ = ["KeyFileError", "generate_keys", "load_public_key", "load_secret_key"]


def generate_keys(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """Write a new key pair as ``NAME.key`` and ``NAME.key_secret`` in ``directory``.

    Returns:
        The public and the secret key file.

    Raises:
        KeyFileError: ``name`` is not a plain file name, or a file exists already.
    """
    if not name or name in {".", ".."} or "/" in name or os.sep in name:
        raise KeyFileError(f"key name {name!r}: expected a plain file name")
    folder = Path(directory)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise KeyFileError(f"{path} exists: keys are never overwritten")
    folder.mkdir(parents=True, exist_ok=True)
    made_public, made_secret = zmq.auth.create_certificates(folder, name)
    os.chmod(made_secret, 0o600)
    return Path(made_public), Path(made_secret)


def _load(path: str | os.PathLike[str]) -> tuple[bytes, bytes | None]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as exc:
        raise KeyFileError(f"{os.fspath(path)}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise KeyFileError(f"{os.fspath(path)}: not a key file ({exc})") from None
    if public is None:
        raise KeyFileError(f"{os.fspath(path)}: not a key file (no public-key)")
    return public, secret


def load_public_key(path: str | os.PathLike[str]) -> bytes:
    """The public key (Z85) in a ``.key`` or ``.key_secret`` file.

    Raises:
        KeyFileError: The file is missing or holds no key.
    """
    return _load(path)[0]


def load_secret_key(path: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """The public and secret keys (Z85) in a ``.key_secret`` file.

    Raises:
        KeyFileError: The file is missing, holds no key, or only a public one.
    """
    public, secret = _load(path)
    if secret is None:
        raise KeyFileError(
            f"{os.fspath(path)}: holds no secret key (give the .key_secret file)"
        )
    return public, secret
