"""RFC 6962 / RFC 9162 Merkle tree primitives for the audit ledger (docs/ledger-format.md §2, §6).

Pure functions over 32-byte SHA-256 hashes; no storage. Storage code keeps the leaf hashes and
the perfect-subtree hashes at every STRIDE-th level, which :meth:`CompactRange.append` emits, and
hands proof generation a :data:`Fetch` callback that reads them back.

Terminology: "level L, index i" is the perfect subtree over leaves ``[i * 2**L, (i + 1) * 2**L)``;
level 0 holds the leaf hashes themselves. Every ``leaf`` argument below is a leaf *hash*
(:func:`leaf_hash` of the event's canonical bytes), never the event bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import TypeAlias

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "STRIDE",
    "CompactRange",
    "Fetch",
    "MemoryNodes",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "parent_level",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
STRIDE = 4
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

# Bound once at import: attribute lookups on the module would dominate the hot append loop.
_sha256 = hashlib.sha256
_NODE_PREFIX = b"\x01"
_LEAF_PREFIX = b"\x00"

Fetch: TypeAlias = Callable[[list[tuple[int, int, int]]], list[list[bytes]]]
"""Reads stored nodes: for each ``(level, start, end)`` (``level`` a multiple of STRIDE), the
hashes of nodes ``start .. end - 1`` at that level, in the same order as the requested ranges."""


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return _sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes")


def _check_size(size: int, what: str = "size") -> None:
    if size < 0:
        raise ValueError(f"{what} must be >= 0, got {size}")


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """Root of consecutive perfect subtrees given largest (leftmost) first.

    The RFC tree pairs the rightmost subtrees first, so the fold runs from the right.
    """
    if not hashes:
        return EMPTY_ROOT
    sha256 = _sha256
    prefix = _NODE_PREFIX
    h = hashes[-1]
    for i in range(len(hashes) - 2, -1, -1):
        h = sha256(prefix + hashes[i] + h).digest()
    return h


def parent_level(hashes: list[bytes]) -> list[bytes]:
    """Hashes of the parents of consecutive pairs, one level up.

    A trailing unpaired node has no complete parent yet, so it is dropped on purpose.
    """
    sha256 = _sha256
    prefix = _NODE_PREFIX
    it = iter(hashes)
    return [sha256(prefix + a + b).digest() for a, b in zip(it, it, strict=False)]


class CompactRange:
    """Right edge of a tree with ``size`` leaves: one perfect-subtree hash per set bit of
    ``size``, largest subtree first.

    This is exactly the "compact range" stored in a purge manifest (ledger-format §6): it is
    enough to keep appending and to recompute every later root without the earlier leaves.
    """

    __slots__ = ("hashes", "size")

    size: int
    hashes: list[bytes]

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        _check_size(size)
        hashes = list(hashes)
        if len(hashes) != size.bit_count():
            raise ValueError(f"a compact range of size {size} holds {size.bit_count()} hashes, got {len(hashes)}")
        for h in hashes:
            _check_hash(h, "compact range hash")
        self.size = size
        self.hashes = hashes

    def append(self, leaf: bytes, emit: list[tuple[int, int, bytes]] | None = None) -> None:
        """Add one leaf hash.

        With ``emit``, appends ``(level, index, hash)`` for each perfect subtree this leaf
        completes whose level is a positive multiple of STRIDE, lowest level first.
        """
        if len(leaf) != HASH_SIZE or not isinstance(leaf, bytes):
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes")
        size = self.size
        hashes = self.hashes
        h = leaf
        if size & 1:
            # Each trailing 1 bit of size is a subtree of the same height as the one being built,
            # so it merges; this is binary increment carried over hashes.
            sha256 = _sha256
            prefix = _NODE_PREFIX
            pop = hashes.pop
            s = size
            if emit is None:
                while s & 1:
                    h = sha256(prefix + pop() + h).digest()
                    s >>= 1
            else:
                new_size = size + 1
                level = 0
                while s & 1:
                    h = sha256(prefix + pop() + h).digest()
                    s >>= 1
                    level += 1
                    if level % STRIDE == 0:
                        emit.append((level, (new_size >> level) - 1, h))
        hashes.append(h)
        self.size = size + 1

    def extend(self, leaves: Iterable[bytes], emit: list[tuple[int, int, bytes]] | None = None) -> None:
        """Add many leaf hashes; same result and same ``emit`` tuples, in the same order, as
        calling :meth:`append` for each."""
        new = leaves if isinstance(leaves, list) else list(leaves)
        count = len(new)
        if not count:
            return
        # Checked up front so that a bad hash leaves the range unchanged, not half extended.
        if set(map(len, new)) != {HASH_SIZE} or not all(isinstance(x, bytes) for x in new):
            raise ValueError(f"leaf hashes must be {HASH_SIZE} bytes")
        if count < 8:
            # Batching only pays off once there are pairs to hash within the batch.
            for leaf in new:
                self.append(leaf, emit)
            return

        old_size = self.size
        old_hashes = self.hashes
        # Old right-edge hash per level, so each level can pick up its left neighbour.
        by_level: dict[int, bytes] = {}
        pos = 0
        for level in range(old_size.bit_length() - 1, -1, -1):
            if old_size >> level & 1:
                by_level[level] = old_hashes[pos]
                pos += 1

        # Processing whole levels at a time lets a list comprehension do the hashing, which is
        # several times cheaper per hash than the per-leaf carry loop.
        edge_low_first: list[bytes] = []
        emitted: list[tuple[int, int, bytes]] = []
        cur: list[bytes] = new if new is not leaves else list(new)
        level = 0
        while cur:
            start = old_size >> level  # index of cur[0] at this level
            if emit is not None and level and level % STRIDE == 0:
                emitted.extend((level, start + j, h) for j, h in enumerate(cur))
            if start & 1:
                cur.insert(0, by_level[level])
            if len(cur) & 1:
                edge_low_first.append(cur[-1])
            cur = parent_level(cur)
            level += 1

        keep = (old_size >> level).bit_count()
        edge_low_first.reverse()
        self.hashes = old_hashes[:keep] + edge_low_first
        self.size = old_size + count
        if emit is not None and emitted:
            # append() reports subtrees in completion order: by right edge, then by level.
            emitted.sort(key=lambda e: ((e[1] + 1) << e[0], e[0]))
            emit.extend(emitted)

    def root(self) -> bytes:
        """MTH of the whole tree (EMPTY_ROOT for size 0)."""
        return _fold_right(self.hashes)

    def to_bytes(self) -> bytes:
        """Concatenated hashes, largest subtree first (the size is stored alongside)."""
        return b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> CompactRange:
        _check_size(size)
        expected = size.bit_count() * HASH_SIZE
        if len(blob) != expected:
            raise ValueError(f"a compact range of size {size} is {expected} bytes, got {len(blob)}")
        blob = bytes(blob)
        return cls(size, [blob[i : i + HASH_SIZE] for i in range(0, expected, HASH_SIZE)])

    def copy(self) -> CompactRange:
        clone = CompactRange.__new__(CompactRange)
        clone.size = self.size
        clone.hashes = self.hashes.copy()
        return clone

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self.size == other.size and self.hashes == other.hashes

    __hash__ = None  # type: ignore[assignment]  # mutable, so not hashable

    def __repr__(self) -> str:
        return f"CompactRange(size={self.size}, hashes=[{', '.join(h.hex() for h in self.hashes)}])"


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH of a list of leaf hashes."""
    cr = CompactRange()
    cr.extend(leaves)
    return cr.root()


# --- proof generation -------------------------------------------------------------------------


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges ``[lo, hi)`` whose MTHs form PATH(index, D[0:size]), leaf side first."""
    out: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        mid = lo + k
        if index < mid:
            out.append((mid, hi))
            hi = mid
        else:
            out.append((lo, mid))
            lo = mid
    out.reverse()
    return out


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose MTHs form PROOF(old_size, D[0:new_size]) (RFC 9162 §2.1.4.1)."""
    out: list[tuple[int, int]] = []
    lo, hi = 0, new_size
    whole = True  # the RFC's `b`: still on the path of subtrees that start at leaf 0
    while old_size != hi:
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        mid = lo + k
        if old_size <= mid:
            out.append((mid, hi))
            hi = mid
        else:
            out.append((lo, mid))
            lo = mid
            whole = False
    if not whole:
        out.append((lo, hi))
    out.reverse()
    return out


def _reduce_perfect(hashes: list[bytes]) -> bytes:
    while len(hashes) > 1:
        hashes = parent_level(hashes)
    return hashes[0]


def _resolve(ranges: list[tuple[int, int]], fetch: Fetch) -> list[bytes]:
    """MTH of each leaf range, read from stored nodes with a single ``fetch`` call.

    Every range that appears in an RFC proof starts at a multiple of the power of two at or above
    its length, so it splits into perfect subtrees by the set bits of its length.
    """
    # Each range as a list of (level, index) perfect subtrees, largest first.
    parts: list[list[tuple[int, int]]] = []
    wanted: set[tuple[int, int, int]] = set()
    for lo, hi in ranges:
        subtrees: list[tuple[int, int]] = []
        while lo < hi:
            level = (hi - lo).bit_length() - 1
            subtrees.append((level, lo >> level))
            base = level - level % STRIDE
            shift = level - base
            wanted.add((base, (lo >> level) << shift, ((lo >> level) + 1) << shift))
            lo += 1 << level
        parts.append(subtrees)
    if not wanted:
        return []

    # Merge overlapping or touching ranges per level: one bigger read is cheaper than two.
    merged: list[list[int]] = []
    located: dict[tuple[int, int, int], tuple[int, int]] = {}
    for base, start, end in sorted(wanted):
        if merged and merged[-1][0] == base and start <= merged[-1][2]:
            merged[-1][2] = max(merged[-1][2], end)
        else:
            merged.append([base, start, end])
        located[(base, start, end)] = (len(merged) - 1, start - merged[-1][1])

    requests = [(base, start, end) for base, start, end in merged]
    results = fetch(requests)
    if len(results) != len(requests):
        raise LookupError(f"fetch returned {len(results)} results for {len(requests)} ranges")
    for (base, start, end), got in zip(requests, results, strict=True):
        if len(got) != end - start:
            raise LookupError(f"fetch returned {len(got)} hashes for level {base} nodes [{start}, {end})")
        for h in got:
            if len(h) != HASH_SIZE:
                raise LookupError(f"fetch returned a {len(h)}-byte hash at level {base}")

    proof: list[bytes] = []
    for subtrees in parts:
        hashes: list[bytes] = []
        for level, idx in subtrees:
            base = level - level % STRIDE
            shift = level - base
            key = (base, idx << shift, (idx + 1) << shift)
            which, offset = located[key]
            block = results[which][offset : offset + (1 << shift)]
            hashes.append(_reduce_perfect([bytes(h) for h in block]))
        proof.append(_fold_right(hashes))
    return proof


def inclusion_proof(index: int, size: int, fetch: Fetch) -> list[bytes]:
    """RFC 9162 §2.1.3.1 audit path for leaf ``index`` in the tree of ``size`` leaves.

    Calls ``fetch`` once, or not at all when the path is empty (``size == 1``). Raises ValueError
    for invalid arguments and LookupError when ``fetch`` does not return the requested nodes.
    """
    if size <= 0:
        raise ValueError(f"inclusion proof needs size >= 1, got {size}")
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    return _resolve(_inclusion_ranges(index, size), fetch)


def consistency_proof(old_size: int, new_size: int, fetch: Fetch) -> list[bytes]:
    """RFC 9162 §2.1.4.1 proof that the tree of ``old_size`` leaves is a prefix of the tree of
    ``new_size`` leaves.

    ``old_size == new_size`` gives the empty proof (the roots must then be equal). RFC 9162 only
    defines proofs for ``0 < old_size``: the empty tree is a prefix of every tree, so there is
    nothing to prove and a verifier gains nothing from it; ``old_size == 0 < new_size`` raises
    ValueError and :func:`verify_consistency` rejects it. Calls ``fetch`` at most once (not at
    all for an empty proof). Raises LookupError when ``fetch`` does not return the nodes.
    """
    _check_size(old_size, "old_size")
    _check_size(new_size, "new_size")
    if old_size > new_size:
        raise ValueError(f"old_size {old_size} is larger than new_size {new_size}")
    if old_size == new_size:
        return []
    if old_size == 0:
        raise ValueError("RFC 9162 defines no consistency proof from the empty tree (old_size 0)")
    return _resolve(_consistency_ranges(old_size, new_size), fetch)


# --- verification -----------------------------------------------------------------------------


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes | bytearray) and len(value) == HASH_SIZE


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``leaf`` (a leaf hash) sit at ``index`` in the tree of ``size``
    leaves whose root is ``root``? Never raises; malformed input is simply not a proof."""
    try:
        proof = list(proof)  # a one-shot iterable would otherwise be consumed by the checks
        if not (_is_hash(leaf) and _is_hash(root)) or not all(_is_hash(p) for p in proof):
            return False
        if not 0 <= index < size:
            return False
        sha256 = _sha256
        prefix = _NODE_PREFIX
        fn = index
        sn = size - 1
        r = bytes(leaf)
        for p in proof:
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                r = sha256(prefix + p + r).digest()
                if not fn & 1:
                    # fn is the last node of a level whose right sibling is missing: it is
                    # promoted unchanged until it becomes a right child or reaches the root.
                    while fn and not fn & 1:
                        fn >>= 1
                        sn >>= 1
            else:
                r = sha256(prefix + r + p).digest()
            fn >>= 1
            sn >>= 1
        return sn == 0 and r == root
    except (TypeError, ValueError, OverflowError):
        return False


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: is the tree ``(old_size, old_root)`` a prefix of ``(new_size,
    new_root)``?

    Equal sizes need an empty proof and equal roots (for size 0, both equal to EMPTY_ROOT).
    ``old_size == 0 < new_size`` is rejected, matching :func:`consistency_proof`. Never raises.
    """
    try:
        proof = list(proof)  # a one-shot iterable would otherwise be consumed by the checks
        if not (_is_hash(old_root) and _is_hash(new_root)) or not all(_is_hash(p) for p in proof):
            return False
        if old_size < 0 or new_size < old_size:
            return False
        if old_size == new_size:
            if proof:
                return False
            if old_size == 0:
                return old_root == new_root == EMPTY_ROOT
            return old_root == new_root
        if old_size == 0 or not proof:
            return False

        path = [bytes(p) for p in proof]
        if old_size & (old_size - 1) == 0:
            # The old tree is then a single perfect subtree of the new one; the RFC omits its
            # hash from the proof because the verifier already holds it.
            path.insert(0, bytes(old_root))
        sha256 = _sha256
        prefix = _NODE_PREFIX
        fn = old_size - 1
        sn = new_size - 1
        while fn & 1:
            fn >>= 1
            sn >>= 1
        fr = sr = path[0]
        for c in path[1:]:
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                fr = sha256(prefix + c + fr).digest()
                sr = sha256(prefix + c + sr).digest()
                if not fn & 1:
                    while fn and not fn & 1:
                        fn >>= 1
                        sn >>= 1
            else:
                sr = sha256(prefix + sr + c).digest()
            fn >>= 1
            sn >>= 1
        return sn == 0 and fr == old_root and sr == new_root
    except (TypeError, ValueError, OverflowError):
        return False


class MemoryNodes:
    """Stored-node view over an in-memory list of leaf hashes, for tests and offline tools;
    ``fetch`` has the :data:`Fetch` signature.

    Keeps the same levels a database would (0, STRIDE, 2*STRIDE, ...), so proofs built from it
    exercise the same reconstruction path as production.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        level0 = list(leaves)
        for h in level0:
            _check_hash(h, "leaf hash")
        self.levels: dict[int, list[bytes]] = {0: level0}
        cur = level0
        level = 0
        while len(cur) > 1:
            cur = parent_level(cur)
            level += 1
            if level % STRIDE == 0:
                self.levels[level] = cur

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def fetch(self, ranges: list[tuple[int, int, int]]) -> list[list[bytes]]:
        out: list[list[bytes]] = []
        for level, start, end in ranges:
            if level % STRIDE or level < 0:
                raise ValueError(f"level {level} is not stored (not a multiple of {STRIDE})")
            if start < 0 or end < start:
                raise ValueError(f"bad node range [{start}, {end}) at level {level}")
            # Like a database query, a range past the stored nodes comes back short.
            out.append(self.levels.get(level, [])[start:end])
        return out
