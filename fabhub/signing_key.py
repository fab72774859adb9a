"""The key that signs access tokens: FABHUB_SECRET_KEY, shared by every process of an installation, or with
`embedded` only (the demo) a random key generated once and kept (mode 0600) under the data directory so
tokens survive a restart. Without the shared key, each process would refuse the others' tokens."""

from __future__ import annotations

import os
import secrets

from fabhub.settings import Settings

MIN_LENGTH = 32


def signing_key(settings: Settings) -> str:
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value()
        if len(key) < MIN_LENGTH:
            raise ValueError(f"FABHUB_SECRET_KEY needs at least {MIN_LENGTH} characters")
        return key
    settings.require("secret_key")
    path = settings.data_dir / "secret-key"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"secret-key.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)  # atomic: of two processes starting together, the first key wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()
