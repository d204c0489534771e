"""The master key file: found, generated on the embedded default, and rewritten by rotation."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from realtime.config import Settings, decode_master_key
from realtime.crypto import Keyring, generate_master_key
from realtime.errors import ConfigError

log = logging.getLogger(__name__)
DEFAULT_KEY_FILE = "master.key"


def key_file_path(settings: Settings) -> Path | None:
    """The file the master keys live in, or None when they come from REALTIME_MASTER_KEY."""
    if settings.master_key is not None:
        return None
    if settings.master_key_file is not None:
        return settings.master_key_file
    if settings.embedded_database:
        return settings.data_dir / DEFAULT_KEY_FILE
    raise ConfigError(
        "REALTIME_MASTER_KEY or REALTIME_MASTER_KEY_FILE must be set "
        "when REALTIME_DATABASE_URL is (the key must be the same on every node)"
    )


def load_keyring(settings: Settings) -> Keyring:
    """The master keys from the environment or the key file, generating it on first start."""
    if settings.master_key is not None and settings.master_key_file is not None:
        raise ConfigError("set REALTIME_MASTER_KEY or REALTIME_MASTER_KEY_FILE, not both")
    path = key_file_path(settings)
    if path is None:
        assert settings.master_key is not None
        return Keyring([settings.master_key])
    if not path.exists() and settings.master_key_file is None:
        write_key_file(path, [generate_master_key()])
        log.warning(
            "generated a new master key in %s: back it up, without it no message can be read",
            path,
        )
    return Keyring(read_key_file(path))


# How often a running node looks at its key file; `rotate-key` waits longer than this.
WATCH_INTERVAL = 2.0


async def run_key_watch(keyring: Keyring, settings: Settings) -> None:
    """Follow the key file: a rotation's new key becomes current on this node within seconds."""
    path = key_file_path(settings)
    if path is None:
        return
    watch = KeyFileWatch(path)
    while True:
        await asyncio.sleep(WATCH_INTERVAL)
        try:
            keys = await asyncio.to_thread(watch)
        except Exception:  # a background loop logs and goes on
            log.exception("could not read the master key file %s", path)
            continue
        if keys:
            keyring.replace(keys)


class KeyFileWatch:
    """Tell the keyring the file's keys when the file has changed since it last looked."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp = self._read_stamp()

    def _read_stamp(self) -> tuple[int, int] | None:
        try:
            status = self._path.stat()
        except OSError:
            return None
        return (status.st_mtime_ns, status.st_ino)

    def __call__(self) -> list[bytes] | None:
        stamp = self._read_stamp()
        if stamp is None or stamp == self._stamp:
            return None
        try:
            keys = read_key_file(self._path)
        except ConfigError as exc:
            log.warning("kept the master keys in use: %s", exc)
            return None
        self._stamp = stamp
        log.info("master keys reloaded from %s", self._path)
        return keys


def read_key_file(path: Path) -> list[bytes]:
    """One base64 key per line: the first is current, the others still open older rows."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"REALTIME_MASTER_KEY_FILE {path}: {exc.strerror}") from None
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the master key file %s is readable by others: chmod 600 it", path)
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            keys.append(decode_master_key(line))
        except ValueError as exc:
            raise ConfigError(f"REALTIME_MASTER_KEY_FILE {path}, line {number}: {exc}") from None
    if not keys:
        raise ConfigError(f"REALTIME_MASTER_KEY_FILE {path} holds no key")
    return keys


@contextmanager
def rotation_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the key file, so that two rotations never interleave."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another key rotation is running on {path}") from None
        yield


def write_key_file(path: Path, keys: list[bytes]) -> None:
    """Write the keys atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".master-key-")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w") as out:
            out.write("# realtime master keys: the first is current. Keep this file secret.\n")
            out.writelines(base64.b64encode(key).decode() + "\n" for key in keys)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
