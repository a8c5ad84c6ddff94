"""Packed blocks of feature rows (the feature-row cache's storage form), without a database."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from predictions.ml import feature_rows
from predictions.ml.feature_rows import RowBlock, RowBlockFormatError


def block(ids, seed=0, n_features=7) -> RowBlock:
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(len(ids), n_features))
    dense[dense < 0.3] = 0.0
    digests = np.array([f"d{i}-{seed}".encode().ljust(16, b".") for i in ids], dtype="S16")
    return RowBlock(np.asarray(ids, dtype=np.int64), digests, feature_rows.as_rows(dense))


def test_a_packed_block_unpacks_to_the_same_ids_digests_and_rows():
    original = block([3, 5, 9, 40])
    again = feature_rows.unpack(feature_rows.pack(original))
    assert again.ids.tolist() == [3, 5, 9, 40]
    assert again.digests.tolist() == original.digests.tolist()
    assert np.array_equal(again.rows.toarray(), original.rows.toarray())
    assert again.rows.dtype == np.float64  # scores from cached rows equal fresh ones bit for bit


def test_bytes_that_are_not_a_block_are_refused():
    packed = feature_rows.pack(block([1, 2]))
    with pytest.raises(RowBlockFormatError):
        feature_rows.unpack(b"XXXX" + packed[4:])
    with pytest.raises(RowBlockFormatError):
        feature_rows.unpack(packed[:-8])


def test_a_row_is_reused_only_for_the_same_visit_with_the_same_digest():
    cached = block([1, 2, 3, 4])
    digests = cached.digests.copy()
    digests[1] = b"changed".ljust(16, b".")  # visit 2's inputs changed
    ids = np.array([1, 2, 4, 6], dtype=np.int64)  # 3 deleted, 6 new
    current = np.array([digests[0], digests[1], digests[3], b"new".ljust(16, b".")], dtype="S16")
    assert feature_rows.reuse(cached, ids, current).tolist() == [0, -1, 3, -1]
    assert feature_rows.reuse(None, ids, current).tolist() == [-1, -1, -1, -1]


def test_assembling_puts_cached_and_fresh_rows_back_in_id_order():
    cached = block([1, 2, 4])
    ids = np.array([1, 2, 4, 6], dtype=np.int64)
    digests = np.array([cached.digests[0], b"x" * 16, cached.digests[2], b"y" * 16], dtype="S16")
    positions = feature_rows.reuse(cached, ids, digests)
    fresh = sparse.csr_matrix(np.arange(14, dtype=float).reshape(2, 7))
    out = feature_rows.assemble(cached, positions, ids, digests, fresh)
    dense = out.rows.toarray()
    assert np.array_equal(dense[0], cached.rows.toarray()[0])
    assert np.array_equal(dense[1], np.arange(7.0))  # visit 2: recomputed
    assert np.array_equal(dense[2], cached.rows.toarray()[2])
    assert np.array_equal(dense[3], np.arange(7.0, 14.0))  # visit 6: new
    assert out.ids.tolist() == [1, 2, 4, 6]


def test_a_block_whose_rows_are_all_valid_is_returned_as_stored():
    cached = block([1, 2, 3])
    positions = feature_rows.reuse(cached, cached.ids, cached.digests)
    empty = sparse.csr_matrix((0, 7))
    assert feature_rows.assemble(cached, positions, cached.ids, cached.digests, empty) is cached


def test_assembling_without_a_fresh_row_for_each_miss_is_refused():
    cached = block([1, 2])
    ids = np.array([1, 2, 3], dtype=np.int64)
    digests = np.array([cached.digests[0], cached.digests[1], b"z" * 16], dtype="S16")
    positions = feature_rows.reuse(cached, ids, digests)
    with pytest.raises(ValueError, match="fresh row"):
        feature_rows.assemble(cached, positions, ids, digests, sparse.csr_matrix((0, 7)))


@pytest.mark.parametrize(
    ("n_features", "magic", "index_bytes"),
    [(65_536, feature_rows.MAGIC_NARROW, 2), (65_537, feature_rows.MAGIC, 4)],
)
def test_column_indices_take_two_bytes_up_to_65536_features_and_four_beyond(
    n_features, magic, index_bytes
):
    rows = sparse.csr_matrix(
        (np.array([1.5, -2.25, 3.0]), np.array([0, 65_535, n_features - 1]), np.array([0, 2, 3])),
        shape=(2, n_features),
    )
    original = RowBlock(np.array([7, 8]), np.array([b"a" * 16, b"b" * 16], dtype="S16"), rows)
    packed = feature_rows.pack(original)
    assert packed[:4] == magic
    nnz = 3  # header 28 bytes; ids, digests, indptr (rows + 1), indices, values
    assert len(packed) == 28 + 2 * 8 + 2 * 16 + 3 * 8 + nnz * index_bytes + nnz * 8
    again = feature_rows.unpack(packed)
    assert again.rows.indices.tolist() == [0, 65_535, n_features - 1]
    assert np.array_equal(again.rows.toarray(), rows.toarray())


def test_two_byte_indices_claimed_for_a_wider_featuriser_are_refused():
    rows = sparse.csr_matrix((np.array([1.0]), np.array([3]), np.array([0, 1])), shape=(1, 10))
    packed = bytearray(feature_rows.pack(RowBlock(np.array([1]), np.array([b"x" * 16]), rows)))
    assert bytes(packed[:4]) == feature_rows.MAGIC_NARROW
    packed[12:20] = (70_000).to_bytes(8, "little")  # the header's feature count
    with pytest.raises(RowBlockFormatError, match="65,536"):
        feature_rows.unpack(bytes(packed))
