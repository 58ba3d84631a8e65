"""Tests for gardien.audit.merkle against an independent, deliberately naive reference.

The reference below transcribes RFC 6962 §2.1 (MTH, PATH, PROOF/SUBPROOF) recursively, slicing
lists exactly as the RFC text does, and hashes with hashlib directly, so it shares no code with
the module under test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gardien.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    STRIDE,
    CompactRange,
    MemoryNodes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

MAX = 600
# Distinct entries, so that a proof for one leaf can never legitimately verify for another.
DATA: list[bytes] = [b"event-%d" % i for i in range(MAX)]

# Hypothesis budgets keep the whole module well under the ~20 s target.
PROPS = settings(max_examples=120, deadline=None)


# --- reference implementation (RFC 6962 §2.1, verbatim structure) -----------------------------


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two strictly smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _sha256(b"")
    if n == 1:
        return _sha256(b"\x00" + d[0])
    k = _k(n)
    return _sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, d, True)


# Shapes: the same recursions over sizes only, recording where each proof element sits. A
# verifier's computation depends only on the shape, so a proof verifies under other sizes
# exactly when their shape is the same (RFC proofs do not bind the tree size by themselves;
# the signed checkpoint does).


def ref_path_shape(m: int, n: int) -> list[str]:
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*ref_path_shape(m, k), "R"]
    return [*ref_path_shape(m - k, n - k), "L"]


def ref_subproof_shape(m: int, n: int, b: bool) -> list[str]:
    if m == n:
        return [] if b else ["S"]
    k = _k(n)
    if m <= k:
        return [*ref_subproof_shape(m, k, b), "R"]
    return [*ref_subproof_shape(m - k, n - k, False), "L"]


@cache
def ref_root(n: int) -> bytes:
    return ref_mth(DATA[:n])


def ref_leaf(i: int) -> bytes:
    return _sha256(b"\x00" + DATA[i])


LEAVES: list[bytes] = [ref_leaf(i) for i in range(MAX)]


@cache
def nodes(stored: int) -> MemoryNodes:
    return MemoryNodes(LEAVES[:stored])


def ref_subtrees(n: int) -> set[tuple[int, int, bytes]]:
    """Every perfect subtree of a tree of n leaves at a positive multiple of STRIDE."""
    out: set[tuple[int, int, bytes]] = set()
    level = STRIDE
    while (1 << level) <= n:
        width = 1 << level
        for i in range(n // width):
            out.add((level, i, ref_mth(DATA[i * width : (i + 1) * width])))
        level += STRIDE
    return out


def flip(h: bytes, pos: int) -> bytes:
    b = bytearray(h)
    b[pos % len(b)] ^= 0x01
    return bytes(b)


# --- hashing and known vectors ----------------------------------------------------------------


def test_hash_primitives_follow_the_rfc_definitions() -> None:
    assert HASH_SIZE == 32
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    left, right = _sha256(b"l"), _sha256(b"r")
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()


def test_small_trees_computed_by_hand() -> None:
    l0 = hashlib.sha256(b"\x00").digest()  # leaf_hash(b"")
    l1 = hashlib.sha256(b"\x00\x00").digest()  # leaf_hash(b"\x00")
    l2 = hashlib.sha256(b"\x00\x10").digest()
    n01 = hashlib.sha256(b"\x01" + l0 + l1).digest()
    assert root_of([]) == hashlib.sha256(b"").digest()
    assert root_of([l0]) == l0
    assert root_of([l0, l1]) == n01
    # Three leaves split 2 + 1 (largest power of two below n), not 1 + 2.
    assert root_of([l0, l1, l2]) == hashlib.sha256(b"\x01" + n01 + l2).digest()


# Published Certificate Transparency reference vectors (RFC 6962 test data).
CT_DATA = [
    bytes.fromhex(x)
    for x in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}
CT_CONSISTENCY = {
    (1, 1): [],
    (1, 8): CT_INCLUSION[(0, 8)],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}


def test_certificate_transparency_vectors() -> None:
    leaves = [leaf_hash(d) for d in CT_DATA]
    for n, want in enumerate(CT_ROOTS):
        assert root_of(leaves[:n]).hex() == want
        assert ref_mth(CT_DATA[:n]).hex() == want  # the reference itself is sound
    store = MemoryNodes(leaves)
    for (i, n), path in CT_INCLUSION.items():
        assert [h.hex() for h in inclusion_proof(i, n, store.fetch)] == path
        assert verify_inclusion(leaves[i], i, n, [bytes.fromhex(h) for h in path], root_of(leaves))
    for (m, n), path in CT_CONSISTENCY.items():
        assert [h.hex() for h in consistency_proof(m, n, store.fetch)] == path
        old, new = bytes.fromhex(CT_ROOTS[m]), bytes.fromhex(CT_ROOTS[n])
        assert verify_consistency(m, n, old, new, [bytes.fromhex(h) for h in path])


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 100, 1000])
def test_roots_match_pymerkle(n: int) -> None:
    pymerkle = pytest.importorskip("pymerkle")
    # disable_security=False is pymerkle's RFC 6962 mode: 0x00 / 0x01 domain prefixes.
    tree = pymerkle.InmemoryTree(algorithm="sha256", disable_security=False)
    entries = [b"pymerkle-%d" % i for i in range(n)]
    tree.append_entries(entries)
    assert root_of([leaf_hash(e) for e in entries]) == tree.get_root()


# --- roots and compact ranges -----------------------------------------------------------------


@PROPS
@given(st.integers(0, MAX))
def test_root_of_matches_reference(n: int) -> None:
    assert root_of(LEAVES[:n]) == ref_root(n)


def test_append_matches_reference_at_every_size() -> None:
    cr = CompactRange()
    assert cr.root() == ref_root(0) == EMPTY_ROOT
    for n in range(1, MAX + 1):
        cr.append(LEAVES[n - 1])
        assert cr.size == n
        assert len(cr.hashes) == n.bit_count()
        assert cr.root() == ref_root(n), n


@PROPS
@given(st.integers(0, MAX), st.lists(st.integers(0, 90), max_size=12))
def test_extend_matches_append_and_reference(start: int, chunks: list[int]) -> None:
    by_append = CompactRange()
    for leaf in LEAVES[:start]:
        by_append.append(leaf)
    by_extend = CompactRange()
    by_extend.extend(LEAVES[:start])
    assert by_extend == by_append
    pos = start
    for chunk in chunks:
        end = min(MAX, pos + chunk)
        by_extend.extend(iter(LEAVES[pos:end]))  # any iterable, not only lists
        for leaf in LEAVES[pos:end]:
            by_append.append(leaf)
        pos = end
        assert by_extend == by_append
        assert by_extend.root() == ref_root(pos)


def test_extend_does_not_mutate_its_argument() -> None:
    batch = LEAVES[3:40]
    before = list(batch)
    cr = CompactRange()
    cr.extend(LEAVES[:3])
    cr.extend(batch)
    assert batch == before


@PROPS
@given(st.integers(0, MAX))
def test_append_emits_exactly_the_stored_levels(n: int) -> None:
    cr = CompactRange()
    emitted: list[tuple[int, int, bytes]] = []
    for j, leaf in enumerate(LEAVES[:n]):
        seen = len(emitted)
        cr.append(leaf, emitted)
        for level, index, _ in emitted[seen:]:
            assert (index + 1) << level == j + 1, "emitted before it was complete"
    assert all(level > 0 and level % STRIDE == 0 for level, _, _ in emitted)
    assert len(emitted) == len(set(emitted))
    assert set(emitted) == ref_subtrees(n)


@PROPS
@given(st.integers(0, MAX), st.lists(st.integers(0, 120), max_size=8))
def test_extend_emits_what_append_emits_in_the_same_order(start: int, chunks: list[int]) -> None:
    want: list[tuple[int, int, bytes]] = []
    cr = CompactRange()
    for leaf in LEAVES:
        cr.append(leaf, want)
    got: list[tuple[int, int, bytes]] = []
    cr = CompactRange()
    cr.extend(LEAVES[:start], got)
    pos = start
    for chunk in chunks:
        end = min(MAX, pos + chunk)
        cr.extend(LEAVES[pos:end], got)
        pos = end
    assert got == [e for e in want if (e[1] + 1) << e[0] <= pos]


def test_emission_reaches_higher_strides() -> None:
    # 2**12 + 37 leaves: levels 4, 8 and 12 are all emitted.
    n = (1 << (3 * STRIDE)) + 37
    data = [b"big-%d" % i for i in range(n)]
    leaves = [leaf_hash(d) for d in data]
    emitted: list[tuple[int, int, bytes]] = []
    CompactRange().extend(leaves, emitted)
    levels = {level for level, _, _ in emitted}
    assert levels == {STRIDE, 2 * STRIDE, 3 * STRIDE}
    top = [e for e in emitted if e[0] == 3 * STRIDE]
    assert top == [(3 * STRIDE, 0, ref_mth(data[: 1 << (3 * STRIDE)]))]
    assert len(emitted) == sum(n >> level for level in levels)


@PROPS
@given(st.integers(0, MAX), st.integers(0, 50))
def test_compact_range_round_trip(n: int, more: int) -> None:
    cr = CompactRange()
    cr.extend(LEAVES[:n])
    blob = cr.to_bytes()
    assert len(blob) == HASH_SIZE * n.bit_count()
    restored = CompactRange.from_bytes(n, blob)
    assert restored == cr
    assert CompactRange(n, cr.hashes) == cr
    # A purge manifest's compact range is enough to carry on (ledger-format §6).
    end = min(MAX, n + more)
    restored.extend(LEAVES[n:end])
    assert restored.root() == ref_root(end)


def test_copy_is_independent() -> None:
    cr = CompactRange()
    cr.extend(LEAVES[:5])
    clone = cr.copy()
    clone.append(LEAVES[5])
    assert cr.size == 5
    assert cr.root() == ref_root(5)
    assert clone.root() == ref_root(6)


def test_compact_range_rejects_bad_input() -> None:
    h = LEAVES[0]
    with pytest.raises(ValueError):
        CompactRange(3, [h])  # popcount(3) == 2
    with pytest.raises(ValueError):
        CompactRange(-1)
    with pytest.raises(ValueError):
        CompactRange(1, [h[:31]])
    with pytest.raises(ValueError):
        CompactRange.from_bytes(3, h)
    with pytest.raises(ValueError):
        CompactRange.from_bytes(-1, b"")
    cr = CompactRange()
    with pytest.raises(ValueError):
        cr.append(h + b"\x00")
    for batch in ([h, h[:31]], [*LEAVES[:20], b"short"]):
        with pytest.raises(ValueError):
            cr.extend(batch)
        assert cr == CompactRange(), "a rejected batch must not be half applied"


# --- inclusion proofs -------------------------------------------------------------------------


@st.composite
def inclusion_case(draw: st.DrawFn) -> tuple[int, int, int]:
    n = draw(st.integers(1, MAX))
    index = draw(st.integers(0, n - 1))
    stored = draw(st.integers(n, MAX))  # proofs for older sizes come from a bigger store
    return index, n, stored


@PROPS
@given(inclusion_case())
def test_inclusion_proof_matches_reference_and_verifies(case: tuple[int, int, int]) -> None:
    index, n, stored = case
    proof = inclusion_proof(index, n, nodes(stored).fetch)
    assert proof == ref_path(index, DATA[:n])
    assert verify_inclusion(LEAVES[index], index, n, proof, ref_root(n))


@PROPS
@given(inclusion_case(), st.integers(0, 2**16), st.integers(0, MAX + 100))
def test_tampered_inclusion_proofs_fail(case: tuple[int, int, int], pos: int, size2: int) -> None:
    index, n, _ = case
    proof = inclusion_proof(index, n, nodes(n).fetch)
    leaf, root = LEAVES[index], ref_root(n)
    if proof:
        bad = list(proof)
        bad[pos % len(bad)] = flip(bad[pos % len(bad)], pos)
        assert not verify_inclusion(leaf, index, n, bad, root)
        assert not verify_inclusion(leaf, index, n, proof[:-1], root)
        assert not verify_inclusion(leaf, index, n, proof[1:], root)
    assert not verify_inclusion(leaf, index, n, [*proof, root], root)
    assert not verify_inclusion(leaf, index, n, [root, *proof], root)
    assert not verify_inclusion(flip(leaf, pos), index, n, proof, root)
    assert not verify_inclusion(leaf, index, n, proof, flip(root, pos))
    for other in {(index + 1) % n, (index - 1) % n, pos % n} - {index}:
        assert not verify_inclusion(leaf, other, n, proof, root)
    if size2 != n:
        same_shape = size2 > index and ref_path_shape(index, size2) == ref_path_shape(index, n)
        assert verify_inclusion(leaf, index, size2, proof, root) == same_shape


def test_inclusion_proof_does_not_bind_the_size() -> None:
    # RFC property, shown so nobody "fixes" it: leaf 0's path in 3 leaves has the same shape as
    # in 4 leaves. The checkpoint signature is what binds a root to its size.
    proof = inclusion_proof(0, 3, nodes(3).fetch)
    assert verify_inclusion(LEAVES[0], 0, 4, proof, ref_root(3))


def test_malformed_inclusion_input_returns_false() -> None:
    proof = inclusion_proof(2, 7, nodes(7).fetch)
    leaf, root = LEAVES[2], ref_root(7)
    assert verify_inclusion(leaf, 2, 7, proof, root)
    malformed: list[object] = [proof[0][:31], proof[0] + b"\x00", "x" * 32, None, 7]
    for junk in malformed:
        assert not verify_inclusion(leaf, 2, 7, [junk, *proof[1:]], root)  # type: ignore[list-item]
    assert not verify_inclusion(leaf[:31], 2, 7, proof, root)
    assert not verify_inclusion(leaf, 2, 7, proof, root[:31])
    assert not verify_inclusion(leaf, 7, 7, proof, root)
    assert not verify_inclusion(leaf, -1, 7, proof, root)
    assert not verify_inclusion(leaf, 0, 0, [], EMPTY_ROOT)
    assert not verify_inclusion(leaf, 2, 7, None, root)  # type: ignore[arg-type]


def test_inclusion_proof_rejects_bad_arguments() -> None:
    fetch = nodes(10).fetch
    for index, size in [(5, 5), (6, 5), (-1, 5), (0, 0), (0, -3)]:
        with pytest.raises(ValueError):
            inclusion_proof(index, size, fetch)
    assert inclusion_proof(0, 1, fetch) == []


# --- consistency proofs -----------------------------------------------------------------------


@st.composite
def consistency_case(draw: st.DrawFn) -> tuple[int, int, int]:
    n = draw(st.integers(1, MAX))
    m = draw(st.integers(1, n))
    stored = draw(st.integers(n, MAX))
    return m, n, stored


@PROPS
@given(consistency_case())
def test_consistency_proof_matches_reference_and_verifies(case: tuple[int, int, int]) -> None:
    m, n, stored = case
    proof = consistency_proof(m, n, nodes(stored).fetch)
    assert proof == ref_proof(m, DATA[:n])
    assert verify_consistency(m, n, ref_root(m), ref_root(n), proof)


@PROPS
@given(consistency_case(), st.integers(0, 2**16), st.integers(0, MAX), st.integers(0, MAX + 100))
def test_tampered_consistency_proofs_fail(case: tuple[int, int, int], pos: int, m2: int, n2: int) -> None:
    m, n, _ = case
    proof = consistency_proof(m, n, nodes(n).fetch)
    old, new = ref_root(m), ref_root(n)
    if m == n:
        assert proof == []
        assert not verify_consistency(m, n, old, new, [new])
        if m > 1:
            assert not verify_consistency(m, n, ref_root(m - 1), new, [])
        return
    bad = list(proof)
    bad[pos % len(bad)] = flip(bad[pos % len(bad)], pos)
    assert not verify_consistency(m, n, old, new, bad)
    assert not verify_consistency(m, n, old, new, proof[:-1])
    assert not verify_consistency(m, n, old, new, proof[1:])
    assert not verify_consistency(m, n, old, new, [*proof, new])
    assert not verify_consistency(m, n, old, new, [new, *proof])
    assert not verify_consistency(m, n, flip(old, pos), new, proof)
    assert not verify_consistency(m, n, old, flip(new, pos), proof)
    assert not verify_consistency(m, n, new, old, proof)
    assert not verify_consistency(n, m, old, new, proof)
    for m3, n3 in {(m - 1, n), (m + 1, n), (m, n - 1), (m, n + 1), (m2, n2)} - {(m, n)}:
        ok = 0 < m3 < n3 and ref_subproof_shape(m3, n3, True) == ref_subproof_shape(m, n, True)
        assert verify_consistency(m3, n3, old, new, proof) == ok, (m3, n3)


def test_consistency_edge_cases() -> None:
    fetch = nodes(10).fetch
    r5, r7 = ref_root(5), ref_root(7)
    # Equal sizes: nothing to prove, the roots must match.
    assert consistency_proof(5, 5, fetch) == []
    assert verify_consistency(5, 5, r5, r5, [])
    assert not verify_consistency(5, 5, r5, r7, [])
    assert not verify_consistency(5, 5, r5, r5, [r5])
    assert consistency_proof(0, 0, fetch) == []
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 0, r5, r5, [])
    # Old size 0: RFC 9162 defines no proof from the empty tree; refused both ways.
    with pytest.raises(ValueError, match="empty tree"):
        consistency_proof(0, 5, fetch)
    assert not verify_consistency(0, 5, EMPTY_ROOT, r5, [])
    assert not verify_consistency(0, 5, EMPTY_ROOT, r5, [r5])
    for old, new in [(6, 5), (-1, 5), (-2, -1)]:
        with pytest.raises(ValueError):
            consistency_proof(old, new, fetch)
        assert not verify_consistency(old, new, r5, r7, [r5])


def test_malformed_consistency_input_returns_false() -> None:
    proof = consistency_proof(3, 7, nodes(7).fetch)
    old, new = ref_root(3), ref_root(7)
    assert verify_consistency(3, 7, old, new, proof)
    malformed: list[object] = [proof[0][:31], proof[0] + b"\x00", "x" * 32, None]
    for junk in malformed:
        assert not verify_consistency(3, 7, old, new, [junk, *proof[1:]])  # type: ignore[list-item]
    assert not verify_consistency(3, 7, old[:31], new, proof)
    assert not verify_consistency(3, 7, old, b"", proof)
    assert not verify_consistency(3, 7, old, new, None)  # type: ignore[arg-type]


# --- stored-node access -----------------------------------------------------------------------


class CountingStore:
    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.inner = MemoryNodes(leaves)
        self.calls: list[list[tuple[int, int, int]]] = []

    def fetch(self, ranges: list[tuple[int, int, int]]) -> list[list[bytes]]:
        self.calls.append(list(ranges))
        return self.inner.fetch(ranges)


def _check_requests(calls: list[list[tuple[int, int, int]]], proof: list[bytes], n: int) -> None:
    assert len(calls) == (1 if proof else 0)
    for ranges in calls:
        assert ranges
        fetched = 0
        for level, start, end in ranges:
            assert level % STRIDE == 0
            assert 0 <= start < end <= n >> level
            fetched += end - start
        # No range is asked for twice or overlaps another.
        spans = sorted(ranges)
        for (la, _, ea), (lb, sb, _) in pairwise(spans):
            assert la != lb or ea <= sb
        # Each path node costs at most 2**(STRIDE-1) stored hashes, and the one ragged node is
        # made of at most log2(n) perfect subtrees.
        assert fetched <= (1 << (STRIDE - 1)) * 2 * n.bit_length()


def _probe_points(n: int, first: int) -> list[int]:
    """Every point for small trees; the edges and the middle for larger ones."""
    if n < 70:
        return list(range(first, n + first))
    return sorted({first, first + 1, n // 3, n // 2, n - 2 + first, n - 1 + first})


def test_fetch_is_called_once_per_proof() -> None:
    store = CountingStore(LEAVES)
    for n in [*range(1, 70), 255, 256, 257, 511, MAX]:
        for index in _probe_points(n, 0):
            store.calls.clear()
            proof = inclusion_proof(index, n, store.fetch)
            _check_requests(store.calls, proof, MAX)
        for m in _probe_points(n, 1):
            store.calls.clear()
            proof = consistency_proof(m, n, store.fetch)
            _check_requests(store.calls, proof, MAX)


def test_missing_nodes_raise_lookup_error() -> None:
    short = nodes(5).fetch
    with pytest.raises(LookupError, match="fetch returned"):
        inclusion_proof(0, 10, short)
    with pytest.raises(LookupError, match="fetch returned"):
        consistency_proof(3, 10, short)

    def wrong_count(ranges: list[tuple[int, int, int]]) -> list[list[bytes]]:
        return nodes(MAX).fetch(ranges)[:-1]

    with pytest.raises(LookupError, match="fetch returned"):
        inclusion_proof(0, 10, wrong_count)


def test_memory_nodes_refuses_unstored_levels() -> None:
    with pytest.raises(ValueError):
        nodes(32).fetch([(1, 0, 2)])
    assert nodes(32).fetch([(STRIDE, 0, 2), (0, 3, 5)]) == [
        [ref_mth(DATA[0:16]), ref_mth(DATA[16:32])],
        LEAVES[3:5],
    ]
