"""Blocks of feature rows packed into one byte string, for the feature-row cache.

A :class:`RowBlock` holds, for a run of visits in ascending id order, each visit's id, a 16-byte
stamp of its inputs (whatever changes when they change: the caller's choice; the Django side
stores a version number) and its feature row (a CSR matrix: the sparse text blocks stay sparse). One
block is stored as one value (encrypted by the caller): decrypting 100,000 rows one token at a
time costs seconds, one block of 10,000 rows costs milliseconds.

:func:`reuse` decides per visit whether its cached row is still valid (same id, same digest; the
featuriser's identity is the caller's key) and :func:`assemble` joins the valid cached rows with
freshly featurised ones in id order. Values are float64, as :meth:`Featurizer.transform` gives
them, so scores from cached rows equal scores from a fresh featurisation bit for bit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from scipy import sparse

MAGIC = b"FRB1"  # column indices as int32
MAGIC_NARROW = b"FRB2"  # column indices as uint16: a featuriser with at most 65,536 features
DIGEST_BYTES = 16
# magic, rows, features, stored values
_HEADER = struct.Struct("<4sQQQ")
_NARROW_FEATURES = 1 << 16


class RowBlockFormatError(ValueError):
    """The bytes are not a packed row block (or not one this version reads)."""


@dataclass(frozen=True)
class RowBlock:
    ids: np.ndarray  # int64, ascending
    digests: np.ndarray  # dtype S16, one per id: a stamp of the inputs the row was computed from
    rows: sparse.csr_matrix  # (len(ids), n_features) float64

    def __post_init__(self) -> None:
        n = len(self.ids)
        if len(self.digests) != n or self.rows.shape[0] != n:
            raise ValueError("a row block needs one digest and one row per id")
        if n > 1 and not bool(np.all(np.diff(self.ids) > 0)):
            raise ValueError("a row block's ids must be strictly ascending")

    @property
    def n_features(self) -> int:
        return int(self.rows.shape[1])


def empty_block(n_features: int) -> RowBlock:
    return RowBlock(
        np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=f"S{DIGEST_BYTES}"),
        sparse.csr_matrix((0, n_features), dtype=np.float64),
    )


def as_rows(matrix: object) -> sparse.csr_matrix:
    """A featuriser's output (dense array or sparse matrix) as float64 CSR."""
    rows = sparse.csr_matrix(matrix, dtype=np.float64)
    rows.sort_indices()
    return rows


def pack(block: RowBlock) -> bytes:
    """The block as bytes. Column indices take 2 bytes each when the featuriser has at most
    65,536 features (a sixth fewer bytes to store, read and decrypt than 4), else 4."""
    rows = block.rows
    narrow = block.n_features <= _NARROW_FEATURES
    header = _HEADER.pack(
        MAGIC_NARROW if narrow else MAGIC, len(block.ids), block.n_features, rows.nnz
    )
    return b"".join(
        (
            header,
            np.ascontiguousarray(block.ids, dtype="<i8").tobytes(),
            np.ascontiguousarray(block.digests, dtype=f"S{DIGEST_BYTES}").tobytes(),
            np.ascontiguousarray(rows.indptr, dtype="<i8").tobytes(),
            np.ascontiguousarray(rows.indices, dtype="<u2" if narrow else "<i4").tobytes(),
            np.ascontiguousarray(rows.data, dtype="<f8").tobytes(),
        )
    )


def unpack(data: bytes) -> RowBlock:
    """The block ``pack`` wrote; the arrays are views on ``data`` (no copy), but for 2-byte
    column indices, widened to int32 as scipy needs."""
    if len(data) < _HEADER.size:
        raise RowBlockFormatError("row block too short")
    magic, n, n_features, nnz = _HEADER.unpack_from(data)
    if magic not in (MAGIC, MAGIC_NARROW):
        raise RowBlockFormatError("not a row block of this format")
    narrow = magic == MAGIC_NARROW
    if narrow and n_features > _NARROW_FEATURES:
        raise RowBlockFormatError("2-byte column indices for more than 65,536 features")
    index_bytes = 2 if narrow else 4
    sizes = (8 * n, DIGEST_BYTES * n, 8 * (n + 1), index_bytes * nnz, 8 * nnz)
    if len(data) != _HEADER.size + sum(sizes):
        raise RowBlockFormatError("row block length does not match its header")
    offset = _HEADER.size
    parts = []
    for size in sizes:
        parts.append(memoryview(data)[offset : offset + size])
        offset += size
    ids = np.frombuffer(parts[0], dtype="<i8")
    digests = np.frombuffer(parts[1], dtype=f"S{DIGEST_BYTES}")
    indptr = np.frombuffer(parts[2], dtype="<i8")
    if narrow:
        indices = np.frombuffer(parts[3], dtype="<u2").astype(np.int32)
    else:
        indices = np.frombuffer(parts[3], dtype="<i4")
    values = np.frombuffer(parts[4], dtype="<f8")
    rows = sparse.csr_matrix((values, indices, indptr), shape=(n, n_features), copy=False)
    return RowBlock(ids, digests, rows)


def reuse(cached: RowBlock | None, ids: np.ndarray, digests: np.ndarray) -> np.ndarray:
    """For each current visit (``ids`` ascending, with the digests of its inputs now): the
    position of its still-valid row in ``cached``, or -1 (absent, or its inputs changed)."""
    positions = np.full(len(ids), -1, dtype=np.int64)
    if cached is None or not len(cached.ids) or not len(ids):
        return positions
    found = np.searchsorted(cached.ids, ids)
    inside = found < len(cached.ids)
    candidate = np.where(inside, found, 0)
    valid = inside & (cached.ids[candidate] == ids) & (cached.digests[candidate] == digests)
    positions[valid] = candidate[valid]
    return positions


def assemble(
    cached: RowBlock | None,
    positions: np.ndarray,
    ids: np.ndarray,
    digests: np.ndarray,
    fresh: sparse.csr_matrix,
) -> RowBlock:
    """The block for ``ids``: cached rows where ``positions`` >= 0, then ``fresh`` rows (one per
    -1, in order) for the rest."""
    hit = positions >= 0
    if cached is not None and bool(hit.all()) and len(ids) == len(cached.ids):
        return cached  # every row still valid: the block as stored
    n_features = fresh.shape[1] if cached is None else cached.n_features
    if int((~hit).sum()) != fresh.shape[0]:
        raise ValueError("one fresh row is needed for every visit without a valid cached row")
    parts = []
    if bool(hit.any()) and cached is not None:
        parts.append(cached.rows[positions[hit]])
    parts.append(as_rows(fresh))
    stacked = sparse.vstack(parts, format="csr") if len(parts) > 1 else parts[0]
    # stacked holds the hits then the misses; put them back in id order.
    order = np.concatenate([np.flatnonzero(hit), np.flatnonzero(~hit)])
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    rows = as_rows(stacked[inverse]) if len(order) else empty_block(n_features).rows
    return RowBlock(np.asarray(ids, dtype=np.int64), np.asarray(digests), rows)
