"""The package file format: segments of 1 MiB under AES-256-GCM; any cut, swap or flip is refused."""

from __future__ import annotations

import io
import os

import pytest

from gardien.core.runtime import Runtime
from gardien.rights.packages import MAGIC, SEGMENT, TAG, EncryptingWriter, PackageCorrupt, decrypt


def seal(runtime: Runtime, plain: bytes, package_id: str = "pkg-1", step: int = 70_000) -> bytes:
    sink = io.BytesIO()
    writer = EncryptingWriter(sink, runtime.keyring, package_id)
    for start in range(0, len(plain), step):
        writer.write(plain[start : start + step])
    writer.close()
    assert writer.size == len(plain)
    return sink.getvalue()


def opened(runtime: Runtime, sealed: bytes, package_id: str = "pkg-1") -> bytes:
    return b"".join(decrypt(io.BytesIO(sealed), runtime.keyring, package_id))


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 2 * SEGMENT, 2 * SEGMENT + SEGMENT // 2])
def test_any_size_goes_through_and_every_segment_carries_its_tag(runtime: Runtime, size: int) -> None:
    plain = os.urandom(size)
    sealed = seal(runtime, plain)
    assert sealed.startswith(MAGIC)
    header = 10 + int.from_bytes(sealed[8:10], "big")
    segments = max(1, -(-size // SEGMENT))  # a last, possibly empty, segment always closes the file
    assert len(sealed) == header + size + segments * TAG
    assert opened(runtime, sealed) == plain


def test_cuts_flips_and_another_package_id_are_refused(runtime: Runtime) -> None:
    plain = os.urandom(2 * SEGMENT + 10)
    sealed = seal(runtime, plain)
    header = 10 + int.from_bytes(sealed[8:10], "big")
    first_segment_end = header + SEGMENT + TAG
    flipped = bytearray(sealed)
    flipped[header + 3] ^= 0x80
    for damaged in (
        sealed[:first_segment_end],  # the file cut at a segment boundary: the last one is missing
        sealed[:-1],
        bytes(flipped),
        # the first two segments swapped
        sealed[:header]
        + sealed[first_segment_end : 2 * first_segment_end - header]
        + sealed[header:first_segment_end]
        + sealed[2 * first_segment_end - header :],
        b"GDNPKG1\n\xff\xff",
        b"not a package at all",
    ):
        with pytest.raises(PackageCorrupt):
            opened(runtime, damaged)
    with pytest.raises(PackageCorrupt):
        opened(runtime, sealed, "pkg-2")
