from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gardien.audit.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    Note,
    NoteError,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    check_note,
    ed25519_key_id,
    sign_note,
)

# Test vectors published with the Go reference implementation (golang.org/x/mod/sumdb/note,
# note_test.go). Ed25519 is deterministic, so reproducing them byte for byte shows that notes
# written here are read by the Go ecosystem and vice versa.
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)

# The example from c2sp.org/tlog-checkpoint (its public key is not published).
SPEC_CHECKPOINT_NOTE = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa "
    "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)

ORIGIN = "gardien.test/audit/0192f1b0-7c1e-7d4e-9a53-8b1f6f0c2a11"
KEY_NAME = "gardien.test/audit"
ROOT = hashlib.sha256(b"root").digest()
TIME = "time 2026-11-22T09:30:00.000000Z"


def _key(seed: int) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner(KEY_NAME, _key(1))


@pytest.fixture
def checkpoint() -> Checkpoint:
    return Checkpoint(origin=ORIGIN, size=1234, root=ROOT, extensions=(TIME,))


@pytest.fixture
def note(signer: NoteSigner, checkpoint: Checkpoint) -> Note:
    return sign_note(checkpoint.body(), [signer])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- reference vectors ---------------------------------------------------------------------------


def _go_signer() -> NoteSigner:
    _, _, name, hex_id, encoded = GO_SKEY.split("+", 4)
    material = base64.b64decode(encoded)
    assert material[0] == 0x01
    signer = NoteSigner(name, Ed25519PrivateKey.from_private_bytes(material[1:]))
    assert signer.key_id.hex() == hex_id
    return signer


def test_go_reference_signer_reproduces_published_note() -> None:
    signer = _go_signer()
    assert signer.vkey() == GO_VKEY
    assert sign_note(GO_TEXT, [signer]).text() == GO_TEXT + "\n" + GO_PETER_SIG


def test_go_reference_note_parses_and_verifies() -> None:
    text = GO_TEXT + "\n" + GO_PETER_SIG + GO_ENOCH_SIG
    note = Note.parse(text)
    assert note.body == GO_TEXT
    assert [s.name for s in note.signatures] == ["PeterNeumann", "EnochRoot"]
    assert note.signatures[0].key_id == bytes.fromhex("c74f20a3")
    assert note.text() == text

    peter = NoteVerifier.from_vkey(GO_VKEY)
    enoch = NoteVerifier.from_vkey(GO_ENOCH_VKEY)
    assert check_note(note, [peter]).verified_by == ("PeterNeumann+c74f20a3",)
    both = check_note(note, [peter, enoch])
    assert both.status == "verified"
    assert both.verified_by == ("PeterNeumann+c74f20a3", "EnochRoot+af0cfe78")
    assert check_note(note, []).status == "unknown_key"

    tampered = Note.parse(text.replace("cryptography", "cryptographY"))
    assert check_note(tampered, [peter]).status == "invalid"


def test_spec_checkpoint_example_parses() -> None:
    note = Note.parse(SPEC_CHECKPOINT_NOTE)
    cp = Checkpoint.parse(note.body)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert cp.body() == note.body
    assert note.text() == SPEC_CHECKPOINT_NOTE


# --- key ids and verifier keys -------------------------------------------------------------------


def test_key_id_known_answer() -> None:
    public_key = _key(7).public_key().public_bytes_raw()
    expected = hashlib.sha256(KEY_NAME.encode() + b"\x0a" + b"\x01" + public_key).digest()[:4]
    assert ed25519_key_id(KEY_NAME, public_key) == expected
    go_public = base64.b64decode(GO_VKEY.split("+", 2)[2])[1:]
    assert ed25519_key_id("PeterNeumann", go_public) == bytes.fromhex("c74f20a3")


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u00a0b", "a\u3000b", "a\x01b"])
def test_key_id_rejects_bad_names(name: str) -> None:
    with pytest.raises(NoteError):
        ed25519_key_id(name, bytes(32))


def test_key_id_rejects_wrong_key_size() -> None:
    with pytest.raises(NoteError):
        ed25519_key_id(KEY_NAME, bytes(31))


def test_signer_and_verifier_keys_agree(signer: NoteSigner) -> None:
    public_key = _key(1).public_key().public_bytes_raw()
    assert signer.public_key == public_key
    assert signer.key_id == ed25519_key_id(KEY_NAME, public_key)
    vkey = signer.vkey()
    encoded_key = _b64(bytes([1]) + public_key)
    assert vkey == f"{KEY_NAME}+{signer.key_id.hex()}+{encoded_key}"
    verifier = NoteVerifier.from_vkey(vkey)
    assert verifier == NoteVerifier.from_public_key(KEY_NAME, public_key)
    assert verifier == signer.verifier()
    assert verifier.vkey() == vkey
    assert (verifier.name, verifier.key_id, verifier.public_key) == (
        KEY_NAME,
        signer.key_id,
        public_key,
    )
    assert "PRIVATE" not in repr(signer)


def test_vkey_manglings_are_rejected() -> None:
    # Same exhaustive check as the Go reference: no proper substring and no single-character
    # change of a valid verifier key is itself a valid key.
    for i in range(len(GO_VKEY)):
        for j in range(i + 1, len(GO_VKEY) + 1):
            if (i, j) != (0, len(GO_VKEY)):
                with pytest.raises(NoteError):
                    NoteVerifier.from_vkey(GO_VKEY[i:j])
    for i, ch in enumerate(GO_VKEY):
        mangled = GO_VKEY[:i] + chr(ord(ch) + 1) + GO_VKEY[i + 1 :]
        with pytest.raises(NoteError):
            NoteVerifier.from_vkey(mangled)


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key id
        "PeterNeumann+c74f20a3+AhpcNw==",  # wrong signature type and size
        "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # type 0x02
        "PeterNeumann+c74f20a3",
        "PeterNeumann",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_bad_vkeys_are_rejected(vkey: str) -> None:
    with pytest.raises(NoteError):
        NoteVerifier.from_vkey(vkey)


def test_verifier_rejects_inconsistent_key_id() -> None:
    public_key = _key(1).public_key().public_bytes_raw()
    with pytest.raises(NoteError):
        NoteVerifier(name=KEY_NAME, key_id=b"\0\0\0\0", public_key=public_key)


# --- round trips ---------------------------------------------------------------------------------


def test_checkpoint_body_format(checkpoint: Checkpoint) -> None:
    assert checkpoint.body() == f"{ORIGIN}\n1234\n{_b64(ROOT)}\n{TIME}\n"


@pytest.mark.parametrize(
    "cp",
    [
        Checkpoint(origin=ORIGIN, size=0, root=bytes(32)),
        Checkpoint(origin=ORIGIN, size=1, root=ROOT),
        Checkpoint(origin="example.com/log", size=2**64 - 1, root=ROOT, extensions=(TIME, "x y")),
        Checkpoint(origin="a b+c/é", size=10, root=ROOT, extensions=("—",)),
    ],
)
def test_checkpoint_round_trip(cp: Checkpoint) -> None:
    assert Checkpoint.parse(cp.body()) == cp


def test_checkpoint_extensions_are_stored_as_tuple() -> None:
    cp = Checkpoint(origin=ORIGIN, size=1, root=ROOT, extensions=[TIME])  # type: ignore[arg-type]
    assert cp.extensions == (TIME,)
    assert hash(cp) == hash(Checkpoint(origin=ORIGIN, size=1, root=ROOT, extensions=(TIME,)))


def test_note_text_format(note: Note, signer: NoteSigner, checkpoint: Checkpoint) -> None:
    (sig,) = note.signatures
    assert len(sig.signature) == 64
    assert note.text() == (checkpoint.body() + "\n" + f"\u2014 {KEY_NAME} {_b64(signer.key_id + sig.signature)}\n")


def test_note_round_trip(note: Note, checkpoint: Checkpoint) -> None:
    parsed = Note.parse(note.text())
    assert parsed == note
    assert Checkpoint.parse(parsed.body) == checkpoint
    assert Note.parse(note.text().encode()) == note


@pytest.mark.parametrize("body", ["\n", "a\n\nb\n", "a\n\n", "x\n\n— k AAAAAAA=\n", "é—\n"])
def test_note_round_trip_unusual_bodies(body: str, signer: NoteSigner) -> None:
    # The text may itself hold blank lines and signature-like lines: only the last blank line
    # separates it from the signatures.
    note = sign_note(body, [signer])
    parsed = Note.parse(note.text())
    assert parsed.body == body
    assert check_note(parsed, [signer.verifier()]).status == "verified"


# --- verification --------------------------------------------------------------------------------


def test_verifies_with_right_key(note: Note, signer: NoteSigner) -> None:
    verifier = NoteVerifier.from_vkey(signer.vkey())
    assert verifier.verify(note.body, note.signatures[0])
    result = check_note(Note.parse(note.text()), [verifier])
    assert result.status == "verified"
    assert result.ok
    assert result.verified_by == (f"{KEY_NAME}+{signer.key_id.hex()}",)


@pytest.mark.parametrize(
    "changed",
    [
        Checkpoint(origin=ORIGIN, size=1235, root=ROOT, extensions=(TIME,)),
        Checkpoint(origin=ORIGIN, size=1234, root=bytes(32), extensions=(TIME,)),
        Checkpoint(origin=ORIGIN + "x", size=1234, root=ROOT, extensions=(TIME,)),
        Checkpoint(origin=ORIGIN, size=1234, root=ROOT, extensions=(TIME.replace("09", "10"),)),
        Checkpoint(origin=ORIGIN, size=1234, root=ROOT),
    ],
    ids=["size", "root", "origin", "extension", "dropped-extension"],
)
def test_changed_body_is_invalid(note: Note, signer: NoteSigner, changed: Checkpoint) -> None:
    forged = Note(body=changed.body(), signatures=note.signatures)
    reparsed = Note.parse(forged.text())
    result = check_note(reparsed, [signer.verifier()])
    assert result.status == "invalid"
    assert signer.vkey().rsplit("+", 1)[0] in result.detail


def test_changed_body_text_is_invalid(note: Note, signer: NoteSigner) -> None:
    forged = Note.parse(note.text().replace("\n1234\n", "\n1233\n"))
    assert Checkpoint.parse(forged.body).size == 1233
    assert check_note(forged, [signer.verifier()]).status == "invalid"


def test_other_key_under_same_name_and_key_id_is_invalid(note: Note, signer: NoteSigner) -> None:
    impostor = _key(2)
    forged_sig = NoteSignature(name=signer.name, key_id=signer.key_id, signature=impostor.sign(note.body.encode()))
    forged = Note.parse(Note(body=note.body, signatures=(forged_sig,)).text())
    assert check_note(forged, [signer.verifier()]).status == "invalid"


def test_valid_and_forged_line_from_same_key_is_invalid(note: Note, signer: NoteSigner) -> None:
    (good,) = note.signatures
    bad = NoteSignature(name=good.name, key_id=good.key_id, signature=bytes(64))
    for signatures in [(good, bad), (bad, good)]:
        result = check_note(Note(body=note.body, signatures=signatures), [signer.verifier()])
        assert result.status == "invalid"


def test_wrong_length_signature_from_trusted_key_is_invalid(note: Note, signer: NoteSigner) -> None:
    (good,) = note.signatures
    short = NoteSignature(name=good.name, key_id=good.key_id, signature=good.signature[:63])
    result = check_note(Note(body=note.body, signatures=(short,)), [signer.verifier()])
    assert result.status == "invalid"


def test_unknown_key_only(note: Note) -> None:
    stranger = NoteSigner(KEY_NAME, _key(3))
    result = check_note(note, [stranger.verifier()])
    assert result.status == "unknown_key"
    assert result.verified_by == ()
    assert not result.ok


def test_same_name_or_same_id_alone_is_unknown(note: Note, signer: NoteSigner) -> None:
    # The spec: ignore signatures that share a name or an id, but not both, with a known key.
    (good,) = note.signatures
    other_id = bytes(b ^ 0xFF for b in good.key_id)
    renamed = NoteSignature(name="someone.else", key_id=good.key_id, signature=good.signature)
    reid = NoteSignature(name=good.name, key_id=other_id, signature=good.signature)
    for sig in (renamed, reid):
        result = check_note(Note(body=note.body, signatures=(sig,)), [signer.verifier()])
        assert result.status == "unknown_key"


def test_unknown_signatures_are_ignored_next_to_a_trusted_one(note: Note, signer: NoteSigner) -> None:
    witness = NoteSigner("witness.example/w1", _key(4))
    junk = NoteSignature(name="junk.example", key_id=b"abcd", signature=b"\x00" * 5000)
    cosigned = Note(body=note.body, signatures=(*note.signatures, witness.sign(note.body), junk))
    parsed = Note.parse(cosigned.text())
    assert parsed == cosigned
    result = check_note(parsed, [signer.verifier()])
    assert result.status == "verified"
    assert "junk.example+61626364" in result.detail


def test_rotation_old_and_new_keys(checkpoint: Checkpoint) -> None:
    old = NoteSigner(KEY_NAME, _key(5))
    new = NoteSigner(KEY_NAME, _key(6))
    assert old.key_id != new.key_id
    note = Note.parse(sign_note(checkpoint.body(), [old, new]).text())
    assert len(note.signatures) == 2
    assert check_note(note, [old.verifier()]).verified_by == (old.vkey().rsplit("+", 1)[0],)
    assert check_note(note, [new.verifier()]).verified_by == (new.vkey().rsplit("+", 1)[0],)
    both = check_note(note, [new.verifier(), old.verifier(), old.verifier()])
    assert both.status == "verified"
    assert len(both.verified_by) == 2
    # Only the old key's signature: verifiers that already moved to the new key cannot vouch.
    old_only = Note(body=note.body, signatures=note.signatures[:1])
    assert check_note(old_only, [new.verifier()]).status == "unknown_key"


def test_verify_rejects_mismatched_signature_identity(note: Note) -> None:
    other = NoteSigner("other.example", _key(1))
    assert not other.verifier().verify(note.body, note.signatures[0])


# --- malformed notes -----------------------------------------------------------------------------

_SIG_B64 = GO_PETER_SIG.split(" ", 2)[2].rstrip("\n")
_MALFORMED_NOTES = {
    "missing-blank-line": GO_TEXT + GO_PETER_SIG,
    "no-signatures": GO_TEXT + "\n",
    "text-only": GO_TEXT,
    "missing-trailing-newline": GO_TEXT + "\n" + GO_PETER_SIG[:-1],
    "extra-blank-line-at-end": GO_TEXT + "\n" + GO_PETER_SIG + "\n",
    "blank-line-only-after-text": GO_TEXT + "\n\n",
    "bad-base64": GO_TEXT + "\n" + "— PeterNeumann x08go/ZJkuBS9UG!==\n",
    "base64-without-padding": GO_TEXT + "\n" + f"— PeterNeumann {_SIG_B64.rstrip('=')}\n",
    "non-canonical-base64": GO_TEXT + "\n" + "— PeterNeumann AAAAAAB=\n",
    "short-signature": GO_TEXT + "\n" + f"— PeterNeumann {_b64(bytes.fromhex('c74f20a3'))}\n",
    "empty-signature": GO_TEXT + "\n" + "— PeterNeumann \n",
    "no-signature-field": GO_TEXT + "\n" + "— PeterNeumann\n",
    "double-space": GO_TEXT + "\n" + f"— PeterNeumann  {_SIG_B64}\n",
    "bad-name": GO_TEXT + "\n" + f"— Bad Name {_SIG_B64}\n",
    "plus-in-name": GO_TEXT + "\n" + f"— Peter+Neumann {_SIG_B64}\n",
    "empty-name": GO_TEXT + "\n" + f"—  {_SIG_B64}\n",
    "hyphen-not-em-dash": GO_TEXT + "\n" + f"- PeterNeumann {_SIG_B64}\n",
    "en-dash": GO_TEXT + "\n" + f"\u2013 PeterNeumann {_SIG_B64}\n",
    "unexpected-line": GO_TEXT + "\n" + GO_PETER_SIG + "Unexpected line.\n",
    "control-char": "\x01" + GO_TEXT + "\n" + GO_PETER_SIG,
    "carriage-return": GO_TEXT.replace("\n", "\r\n") + "\n" + GO_PETER_SIG,
    "tab": "\t" + GO_TEXT + "\n" + GO_PETER_SIG,
    "lone-surrogate": "\udcff" + GO_TEXT + "\n" + GO_PETER_SIG,
    "too-many-signatures": GO_TEXT + "\n" + GO_PETER_SIG * (MAX_SIGNATURES + 1),
}


@pytest.mark.parametrize("text", _MALFORMED_NOTES.values(), ids=_MALFORMED_NOTES.keys())
def test_malformed_notes_are_rejected(text: str) -> None:
    with pytest.raises(NoteError):
        Note.parse(text)


def test_invalid_utf8_bytes_are_rejected() -> None:
    with pytest.raises(NoteError):
        Note.parse(b"\xff" + (GO_TEXT + "\n" + GO_PETER_SIG).encode())


def test_many_signatures_up_to_the_limit_are_accepted() -> None:
    note = Note.parse(GO_TEXT + "\n" + GO_PETER_SIG * MAX_SIGNATURES)
    assert len(note.signatures) == MAX_SIGNATURES
    assert check_note(note, [NoteVerifier.from_vkey(GO_VKEY)]).status == "verified"


def test_extra_blank_lines_before_signatures(note: Note, signer: NoteSigner) -> None:
    # A valid signed note whose text gained a blank line: not a checkpoint, and not what was signed.
    text = note.text().replace("\n\n\u2014", "\n\n\n\u2014")
    parsed = Note.parse(text)
    assert parsed.body == note.body + "\n"
    with pytest.raises(NoteError):
        Checkpoint.parse(parsed.body)
    assert check_note(parsed, [signer.verifier()]).status == "invalid"


def test_blank_line_between_signatures_is_not_a_checkpoint(note: Note) -> None:
    witness = NoteSigner("witness.example/w1", _key(4))
    sig = witness.sign(note.body)
    text = note.text() + "\n" + f"— {sig.name} {_b64(sig.key_id + sig.signature)}\n"
    with pytest.raises(NoteError):
        Checkpoint.parse(Note.parse(text).body)


# --- malformed checkpoints -----------------------------------------------------------------------

_ROOT_B64 = _b64(ROOT)
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _non_canonical(encoded: str) -> str:
    # With one "=" the last data character carries two unused bits; setting one keeps the
    # decoded bytes but changes the spelling.
    assert encoded.endswith("=") and not encoded.endswith("==")
    last = _B64_ALPHABET[_B64_ALPHABET.index(encoded[-2]) | 1]
    assert last != encoded[-2]
    return encoded[:-2] + last + "="


_MALFORMED_CHECKPOINTS = {
    "non-decimal-size": f"{ORIGIN}\n12a4\n{_ROOT_B64}\n",
    "hex-size": f"{ORIGIN}\n0x10\n{_ROOT_B64}\n",
    "leading-zero": f"{ORIGIN}\n01234\n{_ROOT_B64}\n",
    "double-zero": f"{ORIGIN}\n00\n{_ROOT_B64}\n",
    "negative-size": f"{ORIGIN}\n-1\n{_ROOT_B64}\n",
    "plus-size": f"{ORIGIN}\n+1\n{_ROOT_B64}\n",
    "space-in-size": f"{ORIGIN}\n 1\n{_ROOT_B64}\n",
    "underscore-size": f"{ORIGIN}\n1_000\n{_ROOT_B64}\n",
    "non-ascii-digits": f"{ORIGIN}\n\u0661\u0662\n{_ROOT_B64}\n",
    "empty-size": f"{ORIGIN}\n\n{_ROOT_B64}\n",
    "size-over-uint64": f"{ORIGIN}\n{2**64}\n{_ROOT_B64}\n",
    "huge-size": f"{ORIGIN}\n{'9' * 5000}\n{_ROOT_B64}\n",
    "short-root": f"{ORIGIN}\n1\n{_b64(ROOT[:31])}\n",
    "long-root": f"{ORIGIN}\n1\n{_b64(ROOT + b'x')}\n",
    "bad-base64-root": f"{ORIGIN}\n1\n{_ROOT_B64[:-2]}!=\n",
    "unpadded-root": f"{ORIGIN}\n1\n{_ROOT_B64.rstrip('=')}\n",
    "non-canonical-root": f"{ORIGIN}\n1\n{_non_canonical(_ROOT_B64)}\n",
    "hex-root": f"{ORIGIN}\n1\n{ROOT.hex()}\n",
    "empty-origin": f"\n1\n{_ROOT_B64}\n",
    "missing-root": f"{ORIGIN}\n1\n",
    "missing-trailing-newline": f"{ORIGIN}\n1\n{_ROOT_B64}",
    "extra-blank-line": f"{ORIGIN}\n1\n{_ROOT_B64}\n\n",
    "blank-line-between-extensions": f"{ORIGIN}\n1\n{_ROOT_B64}\n{TIME}\n\nmore\n",
    "blank-line-after-origin": f"{ORIGIN}\n\n1\n{_ROOT_B64}\n",
    "control-char": f"{ORIGIN}\x00\n1\n{_ROOT_B64}\n",
    "empty": "",
}


@pytest.mark.parametrize("body", _MALFORMED_CHECKPOINTS.values(), ids=_MALFORMED_CHECKPOINTS.keys())
def test_malformed_checkpoints_are_rejected(body: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(body)


def test_non_canonical_base64_cases_decode_to_valid_values() -> None:
    # Guards the non-canonical cases above against testing plain garbage instead.
    text = _MALFORMED_CHECKPOINTS["non-canonical-root"].split("\n")[2]
    assert text != _ROOT_B64
    assert base64.b64decode(text) == ROOT
    assert base64.b64decode("AAAAAAB=") == bytes(5)


@pytest.mark.parametrize(
    ("origin", "size", "root", "extensions"),
    [
        ("", 1, ROOT, ()),
        ("a\nb", 1, ROOT, ()),
        (ORIGIN, -1, ROOT, ()),
        (ORIGIN, 2**64, ROOT, ()),
        (ORIGIN, True, ROOT, ()),
        (ORIGIN, 1, ROOT[:31], ()),
        (ORIGIN, 1, ROOT, ("",)),
        (ORIGIN, 1, ROOT, ("a\nb",)),
        (ORIGIN, 1, ROOT, ("a\rb",)),
    ],
)
def test_checkpoint_constructor_validates(origin: str, size: int, root: bytes, extensions: tuple[str, ...]) -> None:
    with pytest.raises(NoteError):
        Checkpoint(origin=origin, size=size, root=root, extensions=extensions)


# --- building notes ------------------------------------------------------------------------------


def test_sign_note_rejects_bad_input(signer: NoteSigner) -> None:
    with pytest.raises(NoteError):
        sign_note("no newline", [signer])
    with pytest.raises(NoteError):
        sign_note("a\x07\n", [signer])
    with pytest.raises(NoteError):
        sign_note("a\n", [])
    with pytest.raises(NoteError):
        sign_note("a\n", [signer, NoteSigner(KEY_NAME, _key(1))])


def test_note_constructor_validates(note: Note) -> None:
    with pytest.raises(NoteError):
        Note(body=note.body, signatures=())
    with pytest.raises(NoteError):
        Note(body=note.body.rstrip("\n"), signatures=note.signatures)
    with pytest.raises(NoteError):
        Note(body=note.body, signatures=note.signatures * (MAX_SIGNATURES + 1))
    with pytest.raises(NoteError):
        NoteSignature(name="a b", key_id=b"abcd", signature=b"x")
    with pytest.raises(NoteError):
        NoteSignature(name="a", key_id=b"abc", signature=b"x")
    with pytest.raises(NoteError):
        NoteSignature(name="a", key_id=b"abcd", signature=b"")


def test_signer_rejects_bad_name() -> None:
    with pytest.raises(NoteError):
        NoteSigner("bad name", _key(1))
