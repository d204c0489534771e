"""Envelope encryption, password hashing, tokens, shareable links' keys and the password
generator; no I/O."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import secrets
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from cryptography.exceptions import InvalidKey, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from realtime.errors import CryptoError
from realtime.models import SealedKey

DATA_KEY_BYTES = 32
NONCE_BYTES = 12
TOKEN_BYTES = 32
_TOKEN_CHARS = math.ceil(TOKEN_BYTES * 4 / 3)  # URL-safe base64, unpadded
_KEY_AAD = b"realtime/v1/data-key/"
_FIELD_AAD = b"realtime/v1/field/"
_CHUNK_AAD = b"realtime/v1/chunk/"
_BROKER_INFO = b"realtime/v1/broker-payload-key"
_BROKER_AAD = b"realtime/v1/broker/"
_BROKER_VERSION = b"\x01"
_LINK_KEY_INFO = b"realtime/v1/link-key"
_LINK_SALT_INFO = b"realtime/v1/link-passphrase-salt"
_KEY_ID_BYTES = 8  # a master key id, 16 hex digits, as bytes

# Argon2id at the OWASP baseline: 19 MiB, two passes, one lane.
_ARGON2_MEMORY_KIB = 19456
_ARGON2_ITERATIONS = 2
_ARGON2_LANES = 1


def master_key_id(master_key: bytes) -> str:
    """Name a master key by a fingerprint that reveals nothing of it."""
    return hashlib.sha256(b"realtime master key id\0" + master_key).hexdigest()[:16]


def generate_master_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


@dataclass(frozen=True)
class Envelope:
    """A row's data key, opened: seals and opens that row's fields."""

    row: str
    data_key: bytes = field(repr=False)

    def seal(self, field_name: str, plaintext: str | bytes) -> bytes:
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.data_key).encrypt(nonce, data, self._aad(field_name))

    def open(self, field_name: str, sealed: bytes) -> bytes:
        try:
            return AESGCM(self.data_key).decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], self._aad(field_name)
            )
        except (InvalidTag, ValueError):
            raise CryptoError(f"the field {field_name!r} of {self.row} does not open") from None

    def open_text(self, field_name: str, sealed: bytes) -> str:
        return self.open(field_name, sealed).decode()

    def seal_chunk(self, index: int, data: bytes | bytearray | memoryview) -> bytes:
        """Seal the `index`th chunk of the row's one stream of bytes (a file).

        The nonce is the chunk's index: the row's data key seals that one stream, each chunk
        once, so no nonce repeats under it. The associated data binds the chunk to its row and
        place, so chunks cannot be swapped, moved or borrowed from another file.
        """
        return AESGCM(self.data_key).encrypt(_chunk_nonce(index), data, self._chunk_aad(index))

    def open_chunk(self, index: int, sealed: bytes) -> bytes:
        try:
            return AESGCM(self.data_key).decrypt(
                _chunk_nonce(index), sealed, self._chunk_aad(index)
            )
        except (InvalidTag, ValueError):
            raise CryptoError(f"chunk {index} of {self.row} does not open") from None

    def new_inner(self, row: str, field_name: str) -> tuple[Envelope, bytes]:
        """A fresh data key for `row`, returned open and sealed under this envelope as this
        row's field `field_name` (a link's file: its key opens only with the link's)."""
        data_key = AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)
        return Envelope(row, data_key), self.seal(field_name, data_key)

    def open_inner(self, row: str, field_name: str, sealed: bytes) -> Envelope:
        """The envelope of `row` whose data key `new_inner` sealed as `field_name`."""
        return Envelope(row, self.open(field_name, sealed))

    def _aad(self, field_name: str) -> bytes:
        return _FIELD_AAD + self.row.encode() + b"/" + field_name.encode()

    def _chunk_aad(self, index: int) -> bytes:
        return _CHUNK_AAD + self.row.encode() + b"/" + str(index).encode()


def _chunk_nonce(index: int) -> bytes:
    return index.to_bytes(NONCE_BYTES, "big")


class Keyring:
    """The master keys: the first wraps new data keys, every one opens what it wrapped."""

    def __init__(self, master_keys: Sequence[bytes]) -> None:
        self.replace(master_keys)
        self._fingerprint_key: bytes | None = None

    def replace(self, master_keys: Sequence[bytes]) -> None:
        """Take a new set of keys (a rotated key file): the first becomes current."""
        if not master_keys:
            raise ValueError("a keyring needs at least one master key")
        self._keys = {master_key_id(key): key for key in master_keys}
        self.current_id = master_key_id(master_keys[0])

    def __repr__(self) -> str:
        return f"Keyring(current_id={self.current_id!r}, ids={sorted(self._keys)!r})"

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def new_envelope(self, row: str) -> tuple[Envelope, SealedKey]:
        """Make a fresh data key for `row`, returned open and wrapped."""
        data_key = AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)
        return Envelope(row, data_key), self.wrap(row, data_key)

    def wrap(self, row: str, data_key: bytes) -> SealedKey:
        nonce = os.urandom(NONCE_BYTES)
        master = self._keys[self.current_id]
        wrapped = nonce + AESGCM(master).encrypt(nonce, data_key, _KEY_AAD + row.encode())
        return SealedKey(self.current_id, wrapped)

    def open_envelope(self, row: str, sealed_key: SealedKey) -> Envelope:
        master = self._keys.get(sealed_key.key_id)
        if master is None:
            raise CryptoError(f"the data key of {row} is wrapped under an unknown master key")
        wrapped = sealed_key.wrapped
        try:
            data_key = AESGCM(master).decrypt(
                wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _KEY_AAD + row.encode()
            )
        except (InvalidTag, ValueError):
            raise CryptoError(f"the data key of {row} does not open") from None
        return Envelope(row, data_key)

    def set_fingerprint_key(self, key: bytes) -> None:
        """Take the deployment's fingerprint key (random, kept wrapped under the master key)."""
        self._fingerprint_key = key

    def fingerprint(self, data: bytes) -> bytes:
        """A keyed digest (HMAC-SHA256) of `data`: comparable, yet no guess can be checked
        against it without the fingerprint key, which stays the same across rotations."""
        if self._fingerprint_key is None:
            raise CryptoError("the fingerprint key has not been loaded")
        return hmac.new(self._fingerprint_key, data, hashlib.sha256).digest()

    def holds(self, key_id: str) -> bool:
        """Whether the keyring holds the master key named `key_id`."""
        return key_id in self._keys

    def derive(self, purpose: bytes, key_id: str) -> bytes:
        """A 256-bit key for one purpose, derived (HKDF-SHA256) from the master key `key_id`."""
        master = self._keys.get(key_id)
        if master is None:
            raise CryptoError("a key of an unknown master key was asked for")
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)

    def rewrap(self, row: str, sealed_key: SealedKey) -> SealedKey:
        """Wrap a row's data key again under the current master key."""
        return self.wrap(row, self.open_envelope(row, sealed_key).data_key)


class BrokerSeal:
    """Seal what crosses the broker, so that Redis never holds a readable or forgeable payload.

    AES-256-GCM under a key derived from the current master key, with a random nonce and the
    channel as associated data: a payload opens only on the channel it was sealed for, under a
    master key the keyring still holds (a rotation's old and new keys both open).
    """

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._ciphers: dict[str, AESGCM] = {}

    def seal(self, channel: bytes, payload: bytes) -> bytes:
        key_id = self._keyring.current_id
        header = _BROKER_VERSION + bytes.fromhex(key_id)
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._cipher(key_id).encrypt(nonce, payload, _broker_aad(header, channel))
        return header + nonce + sealed

    def open(self, channel: bytes, sealed: bytes) -> bytes:
        """The payload sealed for `channel`; CryptoError for anything else."""
        header_size = 1 + _KEY_ID_BYTES
        header, nonce = sealed[:header_size], sealed[header_size:header_size + NONCE_BYTES]
        if len(nonce) < NONCE_BYTES or header[:1] != _BROKER_VERSION:
            raise CryptoError("a broker payload is not sealed")
        key_id = header[1:].hex()
        if not self._keyring.holds(key_id):
            raise CryptoError("a broker payload is sealed under an unknown master key")
        try:
            return self._cipher(key_id).decrypt(
                nonce, sealed[header_size + NONCE_BYTES:], _broker_aad(header, channel)
            )
        except InvalidTag:
            raise CryptoError("a broker payload does not open") from None

    def _cipher(self, key_id: str) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            cipher = AESGCM(self._keyring.derive(_BROKER_INFO, key_id))
            self._ciphers[key_id] = cipher
        return cipher


def _broker_aad(header: bytes, channel: bytes) -> bytes:
    return _BROKER_AAD + header + b"/" + channel


def hash_password(password: str) -> str:
    """Hash a password with Argon2id into a PHC string."""
    kdf = Argon2id(
        salt=os.urandom(16),
        length=32,
        iterations=_ARGON2_ITERATIONS,
        lanes=_ARGON2_LANES,
        memory_cost=_ARGON2_MEMORY_KIB,
    )
    return kdf.derive_phc_encoded(password.encode())


def verify_password(password: str, password_hash: str) -> bool:
    """Check a password against its PHC hash, in the time Argon2id takes either way."""
    try:
        Argon2id.verify_phc_encoded(password.encode(), password_hash)
    except (InvalidKey, ValueError):
        return False
    return True


# Checked against when the user does not exist, so that both answers take as long.
DECOY_PASSWORD_HASH = hash_password(secrets.token_urlsafe(16))


def new_token() -> str:
    """A token (a session's, a link's): 32 random bytes, URL-safe."""
    return _url_safe(secrets.token_bytes(TOKEN_BYTES))


def token_digest(token: str) -> bytes:
    """The only form of a token that is ever stored."""
    return hashlib.sha256(token.encode()).digest()


def link_envelope(row: str, token: str, passphrase: str | None = None) -> Envelope:
    """The envelope of a shareable link's content: its data key is derived from the link's
    token (HKDF-SHA256), and, with a passphrase, from the token and the passphrase together
    (Argon2id, salted by the token), so that neither the database nor the master key opens it,
    and a passphrase is needed to decrypt, not just checked. Only `token_digest(token)` is
    ever stored: a different function of the token, from which the key cannot be had.

    A token that is not one of ours (32 bytes, URL-safe base64) is a CryptoError.
    """
    secret = _token_bytes(token)
    key = _hkdf(secret, _LINK_KEY_INFO, DATA_KEY_BYTES)
    if passphrase is not None:
        kdf = Argon2id(
            salt=_hkdf(secret, _LINK_SALT_INFO, 16),
            length=DATA_KEY_BYTES,
            iterations=_ARGON2_ITERATIONS,
            lanes=_ARGON2_LANES,
            memory_cost=_ARGON2_MEMORY_KIB,
        )
        key = kdf.derive(key + passphrase.encode())
    return Envelope(row, key)


def _token_bytes(token: str) -> bytes:
    """The 32 random bytes a token (as `new_token` makes it) stands for."""
    if len(token) != _TOKEN_CHARS:
        raise CryptoError("not a token")
    try:
        secret = base64.urlsafe_b64decode(token + "=")
    except (ValueError, TypeError):
        raise CryptoError("not a token") from None
    if len(secret) != TOKEN_BYTES or _url_safe(secret) != token:
        raise CryptoError("not a token")
    return secret


def _url_safe(secret: bytes) -> str:
    return base64.urlsafe_b64encode(secret).decode().rstrip("=")


def _hkdf(secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


def same_secret(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets in constant time."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


AMBIGUOUS = frozenset("Il1|O0oB8S5Z2`'\".,;:")
CHARACTER_CLASSES = {
    "lower": string.ascii_lowercase,
    "upper": string.ascii_uppercase,
    "digits": string.digits,
    "symbols": "!#$%&()*+-./:;<=>?@[]^_{|}~,",
}
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128


@dataclass(frozen=True)
class GeneratedPassword:
    password: str = field(repr=False)
    entropy_bits: float


def generate_password(
    length: int, classes: Iterable[str], *, avoid_ambiguous: bool = False
) -> GeneratedPassword:
    """Draw a password uniformly among those of `length` holding every chosen class."""
    alphabets = [_alphabet(name, avoid_ambiguous) for name in dict.fromkeys(classes)]
    if not alphabets:
        raise ValueError("choose at least one character class")
    if not PASSWORD_MIN_LENGTH <= length <= PASSWORD_MAX_LENGTH:
        raise ValueError(f"length must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH}")
    pool = "".join(alphabets)
    while True:  # rejection sampling keeps the draw uniform over the valid passwords
        candidate = "".join(secrets.choice(pool) for _ in range(length))
        if all(any(ch in alphabet for ch in candidate) for alphabet in alphabets):
            return GeneratedPassword(candidate, _entropy_bits(length, [len(a) for a in alphabets]))


def _alphabet(name: str, avoid_ambiguous: bool) -> str:
    characters = CHARACTER_CLASSES[name]
    if avoid_ambiguous:
        characters = "".join(ch for ch in characters if ch not in AMBIGUOUS)
    return characters


def _entropy_bits(length: int, sizes: list[int]) -> float:
    """log2 of how many passwords hold every class: inclusion and exclusion over the classes."""
    total = sum(sizes)
    count = 0
    for dropped in range(len(sizes) + 1):
        for subset in combinations(sizes, dropped):
            count += (-1) ** dropped * (total - sum(subset)) ** length
    return round(math.log2(count), 2)


def row_name(table: str, row_id: object) -> str:
    """The name a row's data key and fields are bound to: `table/id`."""
    return f"{table}/{row_id}"
