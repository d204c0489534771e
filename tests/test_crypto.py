"""Envelope encryption, the keyring, password hashing and tokens: pure and synchronous."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from realtime.crypto import (
    DATA_KEY_BYTES,
    BrokerSeal,
    Envelope,
    Keyring,
    generate_master_key,
    hash_password,
    link_envelope,
    master_key_id,
    new_token,
    row_name,
    same_secret,
    token_digest,
    verify_password,
)
from realtime.errors import CryptoError
from realtime.models import SealedKey

ROW = "messages/00000000-0000-4000-8000-000000000001"
OTHER_ROW = "messages/00000000-0000-4000-8000-000000000002"
SECRET = "the launch code is 0000"


def envelope(row: str = ROW) -> Envelope:
    return Envelope(row, bytes(range(DATA_KEY_BYTES)))


# Envelope


def test_an_envelope_seals_and_opens_a_field() -> None:
    """What is sealed under a field opens under the same field, as bytes and as text."""
    sealed = envelope().seal("subject", SECRET)
    assert envelope().open("subject", sealed) == SECRET.encode()
    assert envelope().open_text("subject", sealed) == SECRET


def test_an_envelope_seals_bytes_too() -> None:
    """Bytes go in and come out unchanged."""
    data = bytes(range(256))
    assert envelope().open("file", envelope().seal("file", data)) == data


def test_a_sealed_field_hides_its_plaintext_and_never_repeats() -> None:
    """The ciphertext holds no trace of the plaintext, and two seals of one text differ."""
    first = envelope().seal("subject", SECRET)
    second = envelope().seal("subject", SECRET)
    assert SECRET.encode() not in first
    assert first != second
    assert envelope().open_text("subject", second) == SECRET


def test_a_sealed_field_does_not_open_under_another_field_name() -> None:
    """The field name is bound in: a subject cannot be read as a body."""
    sealed = envelope().seal("subject", SECRET)
    with pytest.raises(CryptoError):
        envelope().open("body", sealed)


def test_a_sealed_field_does_not_open_under_another_row() -> None:
    """The row name is bound in: a field moved to another row with the same key fails."""
    sealed = envelope(ROW).seal("subject", SECRET)
    with pytest.raises(CryptoError):
        envelope(OTHER_ROW).open("subject", sealed)


def test_a_sealed_field_does_not_open_under_another_data_key() -> None:
    """Only the data key it was sealed with opens a field."""
    sealed = envelope().seal("subject", SECRET)
    other = Envelope(ROW, bytes(reversed(range(DATA_KEY_BYTES))))
    with pytest.raises(CryptoError):
        other.open("subject", sealed)


@pytest.mark.parametrize("position", [0, 11, 12, -17, -1])
def test_a_tampered_byte_fails(position: int) -> None:
    """Changing any byte, of the nonce, the ciphertext or the tag, makes the field fail."""
    sealed = bytearray(envelope().seal("subject", SECRET))
    sealed[position] ^= 0x01
    with pytest.raises(CryptoError):
        envelope().open("subject", bytes(sealed))


@pytest.mark.parametrize("sealed", [b"", b"short", b"\0" * 12])
def test_a_truncated_field_fails_as_a_crypto_error(sealed: bytes) -> None:
    """A field too short to hold a nonce and a tag is a CryptoError, not a crash."""
    with pytest.raises(CryptoError):
        envelope().open("subject", sealed)


def test_an_envelope_keeps_its_data_key_out_of_repr() -> None:
    """repr(Envelope) names the row but not the key."""
    data_key = bytes(range(DATA_KEY_BYTES))
    shown = repr(Envelope(ROW, data_key))
    assert ROW in shown
    assert repr(data_key) not in shown and data_key.hex() not in shown


# Keyring


def test_a_keyring_wraps_under_its_current_key_id() -> None:
    """New data keys are wrapped under the first master key, named by its id."""
    first, second = generate_master_key(), generate_master_key()
    keyring = Keyring([first, second])
    assert keyring.current_id == master_key_id(first)
    assert keyring.key_ids == {master_key_id(first), master_key_id(second)}
    opened, sealed_key = keyring.new_envelope(ROW)
    assert sealed_key.key_id == master_key_id(first)
    assert opened.row == ROW and len(opened.data_key) == DATA_KEY_BYTES
    assert opened.data_key not in sealed_key.wrapped


def test_a_keyring_opens_envelopes_wrapped_by_any_key_it_holds() -> None:
    """A keyring holding an older key still opens what that key wrapped."""
    old, new = generate_master_key(), generate_master_key()
    opened, sealed_key = Keyring([old]).new_envelope(ROW)
    sealed = opened.seal("body", SECRET)
    for keyring in (Keyring([new, old]), Keyring([old, new]), Keyring([old])):
        assert keyring.open_envelope(ROW, sealed_key).open_text("body", sealed) == SECRET


def test_a_keyring_without_the_key_raises_crypto_error() -> None:
    """A data key wrapped under a master key the keyring lacks does not open."""
    _, sealed_key = Keyring([generate_master_key()]).new_envelope(ROW)
    with pytest.raises(CryptoError):
        Keyring([generate_master_key()]).open_envelope(ROW, sealed_key)


def test_a_wrapped_key_claiming_a_held_key_id_but_wrapped_otherwise_fails() -> None:
    """A wrapped key relabelled with a known key id still does not open."""
    held, foreign = generate_master_key(), generate_master_key()
    _, sealed_key = Keyring([foreign]).new_envelope(ROW)
    relabelled = SealedKey(master_key_id(held), sealed_key.wrapped)
    with pytest.raises(CryptoError):
        Keyring([held]).open_envelope(ROW, relabelled)


def test_a_wrapped_key_does_not_open_for_another_row() -> None:
    """A data key is bound to its row: moved to another row, it does not open."""
    keyring = Keyring([generate_master_key()])
    _, sealed_key = keyring.new_envelope(ROW)
    with pytest.raises(CryptoError):
        keyring.open_envelope(OTHER_ROW, sealed_key)


def test_a_tampered_wrapped_key_fails() -> None:
    """Changing one byte of a wrapped data key makes it fail to open."""
    keyring = Keyring([generate_master_key()])
    _, sealed_key = keyring.new_envelope(ROW)
    wrapped = bytearray(sealed_key.wrapped)
    wrapped[-1] ^= 0x80
    with pytest.raises(CryptoError):
        keyring.open_envelope(ROW, SealedKey(sealed_key.key_id, bytes(wrapped)))


def test_rewrap_moves_a_key_to_the_current_id_and_the_content_still_opens() -> None:
    """Re-wrapping changes only the wrapping: the new key alone then opens the old content."""
    old, new = generate_master_key(), generate_master_key()
    opened, old_key = Keyring([old]).new_envelope(ROW)
    sealed = opened.seal("subject", SECRET)
    moved = Keyring([new, old]).rewrap(ROW, old_key)
    assert moved.key_id == master_key_id(new)
    assert moved.wrapped != old_key.wrapped
    assert Keyring([new]).open_envelope(ROW, moved).open_text("subject", sealed) == SECRET
    with pytest.raises(CryptoError):
        Keyring([old]).open_envelope(ROW, moved)


def test_a_keyring_needs_a_key() -> None:
    """An empty keyring is refused."""
    with pytest.raises(ValueError, match="at least one"):
        Keyring([])


def test_a_keyring_keeps_its_keys_out_of_repr() -> None:
    """repr(Keyring) shows key ids, never a key."""
    key = generate_master_key()
    shown = repr(Keyring([key]))
    assert master_key_id(key) in shown
    assert repr(key) not in shown and base64.b64encode(key).decode() not in shown


def test_master_key_id_is_stable_and_reveals_nothing_of_the_key() -> None:
    """The id of a key is the same every time, differs between keys and does not hold the key."""
    key = generate_master_key()
    assert master_key_id(key) == master_key_id(bytes(key))
    assert master_key_id(key) != master_key_id(generate_master_key())
    key_id = master_key_id(key)
    for form in (key.hex(), base64.b64encode(key).decode(), base64.urlsafe_b64encode(key).decode()):
        assert form not in key_id and key_id not in form


def test_row_name_joins_table_and_id() -> None:
    """A row's name is `table/id`."""
    assert row_name("messages", 42) == "messages/42"


# Passwords


def test_a_password_verifies_against_its_hash() -> None:
    """The right password matches its hash; a wrong one does not."""
    hashed = hash_password("correct horse battery")
    assert verify_password("correct horse battery", hashed)
    assert not verify_password("correct horse batterY", hashed)
    assert not verify_password("", hashed)


def test_a_password_hash_is_an_argon2id_phc_string_salted_each_time() -> None:
    """The hash is `$argon2id$...`, and two hashes of one password differ."""
    first = hash_password("same password")
    second = hash_password("same password")
    assert first.startswith("$argon2id$v=19$")
    assert "same password" not in first
    assert first != second
    assert verify_password("same password", second)


@pytest.mark.parametrize(
    "malformed",
    [
        "",
        "not a hash",
        "$argon2id$",
        "$argon2id$v=19$m=19456,t=2,p=1$AAAA$BBBB",
        "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        "$2b$12$abcdefghijklmnopqrstuv",
    ],
)
def test_a_malformed_hash_verifies_nothing(malformed: str) -> None:
    """A hash that is not a valid Argon2id PHC string is False, never an exception."""
    assert verify_password("anything", malformed) is False


# Tokens and secrets


def test_tokens_are_43_url_safe_characters_and_distinct() -> None:
    """A session token is 32 random bytes in unpadded URL-safe base64."""
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for token in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token), token
        assert len(base64.urlsafe_b64decode(token + "=")) == 32


def test_token_digest_is_sha256_of_the_token() -> None:
    """What is stored for a token is its SHA-256 digest."""
    token = new_token()
    assert token_digest(token) == hashlib.sha256(token.encode()).digest()
    assert token_digest(token) != token_digest(new_token())
    assert len(token_digest(token)) == 32


def test_same_secret_compares_strings_and_bytes() -> None:
    """Equal secrets compare equal, as str or bytes; different ones do not."""
    assert same_secret("secret", "secret")
    assert same_secret(b"secret", b"secret")
    assert same_secret("secret", b"secret")
    assert not same_secret("secret", "Secret")
    assert not same_secret("secret", "secret ")
    assert not same_secret(b"", b"x")


def test_a_keyring_given_new_keys_wraps_under_the_first_and_opens_with_all() -> None:
    """After `replace`, new data keys wrap under the new first key; older rows still open."""
    old, new = generate_master_key(), generate_master_key()
    keyring = Keyring([old])
    envelope, before = keyring.new_envelope("messages/1")
    keyring.replace([new, old])
    assert keyring.current_id == master_key_id(new)
    assert keyring.new_envelope("messages/2")[1].key_id == master_key_id(new)
    assert keyring.open_envelope("messages/1", before).data_key == envelope.data_key
    keyring.replace([new])
    with pytest.raises(CryptoError):
        keyring.open_envelope("messages/1", before)


# Broker payloads

CHANNEL = b"realtime:user:00000000-0000-4000-8000-000000000001"
OTHER_CHANNEL = b"realtime:user:00000000-0000-4000-8000-000000000002"


def test_a_sealed_broker_payload_opens_on_its_channel_and_hides_its_content() -> None:
    """A payload sealed for a channel opens there, and its sealed form holds none of it."""
    seal = BrokerSeal(Keyring([generate_master_key()]))
    sealed = seal.seal(CHANNEL, SECRET.encode())
    assert SECRET.encode() not in sealed and b"launch" not in sealed
    assert seal.open(CHANNEL, sealed) == SECRET.encode()
    assert seal.seal(CHANNEL, SECRET.encode()) != sealed  # a random nonce each time


def test_a_broker_payload_does_not_open_elsewhere_or_altered() -> None:
    """Moved to another channel, altered in any byte, cut short, or sealed under a key the
    keyring does not hold, a payload does not open."""
    keyring = Keyring([generate_master_key()])
    seal = BrokerSeal(keyring)
    sealed = seal.seal(CHANNEL, SECRET.encode())
    with pytest.raises(CryptoError):
        seal.open(OTHER_CHANNEL, sealed)
    for index in range(len(sealed)):
        altered = bytearray(sealed)
        altered[index] ^= 0x01
        with pytest.raises(CryptoError):
            seal.open(CHANNEL, bytes(altered))
    for forged in (b"", sealed[:20], SECRET.encode()):
        with pytest.raises(CryptoError):
            seal.open(CHANNEL, forged)
    foreign = BrokerSeal(Keyring([generate_master_key()])).seal(CHANNEL, SECRET.encode())
    with pytest.raises(CryptoError):
        seal.open(CHANNEL, foreign)


def test_broker_payloads_follow_the_keyring_through_a_rotation() -> None:
    """Sealed under the current key, opened under any key held; a retired key no longer opens."""
    old, new = generate_master_key(), generate_master_key()
    keyring = Keyring([old])
    seal = BrokerSeal(keyring)
    under_old = seal.seal(CHANNEL, b"old")
    keyring.replace([new, old])
    under_new = seal.seal(CHANNEL, b"new")
    assert BrokerSeal(Keyring([new])).open(CHANNEL, under_new) == b"new"
    assert seal.open(CHANNEL, under_old) == b"old"
    keyring.replace([new])
    with pytest.raises(CryptoError):
        seal.open(CHANNEL, under_old)


def test_the_fingerprint_key_is_needed_and_decides_the_fingerprint() -> None:
    """Without its fingerprint key a keyring refuses to fingerprint; with it, the fingerprint
    depends on that key only, not on the master keys."""
    first, second = Keyring([generate_master_key()]), Keyring([generate_master_key()])
    with pytest.raises(CryptoError):
        first.fingerprint(b"request")
    key = bytes(range(32))
    first.set_fingerprint_key(key)
    second.set_fingerprint_key(key)
    assert first.fingerprint(b"request") == second.fingerprint(b"request")
    assert first.fingerprint(b"request") != first.fingerprint(b"other request")
    second.set_fingerprint_key(bytes(32))
    assert first.fingerprint(b"request") != second.fingerprint(b"request")


def test_a_links_content_opens_with_its_token_and_nothing_else() -> None:
    """A link's content opens with its token, and not with another token, the token's stored
    digest, or any key the server holds."""
    token, other = new_token(), new_token()
    sealed = link_envelope("links/1", token).seal("body", "the secret")
    assert link_envelope("links/1", token).open_text("body", sealed) == "the secret"
    with pytest.raises(CryptoError):
        link_envelope("links/1", other).open("body", sealed)
    with pytest.raises(CryptoError):
        link_envelope("links/2", token).open("body", sealed)  # bound to its row
    digest = token_digest(token)
    with pytest.raises(CryptoError):
        Envelope("links/1", digest).open("body", sealed)
    keyring = Keyring([generate_master_key()])
    envelope, _ = keyring.new_envelope("links/1")
    with pytest.raises(CryptoError):
        envelope.open("body", sealed)


def test_a_passphrase_is_needed_to_open_a_link_not_just_checked() -> None:
    """With a passphrase, the content opens only with the token and that passphrase: the token
    alone, or with another passphrase, does not decrypt it."""
    token = new_token()
    sealed = link_envelope("links/1", token, "correct horse").seal("body", "the secret")
    assert link_envelope("links/1", token, "correct horse").open_text("body", sealed) == (
        "the secret"
    )
    for passphrase in (None, "correct horsE", ""):
        with pytest.raises(CryptoError):
            link_envelope("links/1", token, passphrase).open("body", sealed)


@pytest.mark.parametrize("token", [
    "", "short", "A" * 42, "A" * 44, "+" * 43, "=" * 43, "A" * 42 + "!", "A" * 42 + "B",
], ids=["empty", "short", "a character short", "a character long", "not url-safe",
        "padding", "foreign character", "not canonical"])
def test_only_a_token_of_ours_derives_a_link_key(token: str) -> None:
    """A link token that is not 32 URL-safe base64 bytes, as we write them (too short, too
    long, foreign characters, padding, stray bits) is refused, never stretched into a key; the
    same length in our alphabet is taken."""
    with pytest.raises(CryptoError):
        link_envelope("links/1", token)
    assert link_envelope("links/1", "A" * 43).row == "links/1"
