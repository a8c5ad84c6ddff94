"""Incremental fine-tuning: the nightly refit of a served sequence model from kept weights.

``finetune_incremental(events, labels, pretrained=, champion=, options=)`` starts from weights a
forecast artifact keeps (:mod:`predictions.ml.timeline.weights`) instead of pretraining afresh:

* **start** -- the champion's fine-tuned network when it descends from this pretrained encoder
  (its ``parent`` is the encoder's checksum) and has the same architecture; otherwise the
  pretrained encoder with a fresh risk head. The chosen start and why are in the log, with the
  checksum of the weights the first epoch began from.
* **vocabulary** -- a token vocabulary is fitted on the new data exactly as training fits it. Codes
  it has that the start's vocabulary lacks (new codes since the monthly pretraining) get new
  embedding rows, initialised from the unknown-code row: before the extension those events were
  read as "unknown code", so the extended network reads them as before (exactly, for codes without
  values; valued ones are now standardised with their own statistics) and training moves the new
  rows from there. Existing codes keep their rows and value statistics
  (the weights were learned with them). When the new codes exceed ``MAX_VOCABULARY_GROWTH`` of the
  vocabulary, most of the course would be read through untrained rows: :class:`IncrementalRefused`
  is raised with that reason and the caller runs a full training instead.
* **training** -- a few epochs of :func:`~predictions.ml.timeline.training.finetune` (early
  stopping on held-out patients, seeded), Platt scaling on its validation split, ONNX export.

No Django here; the nightly job in predictions/services/training.py calls it.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from predictions.ml.errors import DataError
from predictions.ml.timeline.forecast import (
    SEQUENCE_MODELS,
    ForecastOptions,
    _Run,
    pretraining_corpus,
)
from predictions.ml.timeline.serving import ForecastModel, TimelineEmbedder
from predictions.ml.timeline.tokens import UNKNOWN, TokenEncoder
from predictions.ml.timeline.weights import NetWeights, TimelineWeights

# New codes beyond this share of the start's vocabulary: refit in full rather than extend.
MAX_VOCABULARY_GROWTH = 0.25
# Embedding tables indexed by token id (rows follow the vocabulary).
VOCABULARY_TABLES = (
    "code_embedding.weight",
    "value_embedding.weight",
    "next_code.weight",
    "next_code.bias",
)


class IncrementalRefused(DataError):
    """Incremental fine-tuning does not apply; the message says why (a full refit is needed)."""


def merged_encoder(start: TokenEncoder, fresh: TokenEncoder) -> tuple[TokenEncoder, list[str]]:
    """``start``'s vocabulary plus ``fresh``'s new codes (sorted), and the new codes.

    Existing codes keep ``start``'s value statistics; new codes take ``fresh``'s.
    """
    known = set(start.vocabulary)
    added = sorted(c for c in fresh.vocabulary if c not in known)
    if not added:
        return start, []
    vocabulary = sorted(known | set(added))
    size = len(vocabulary) + 2
    merged = TokenEncoder(
        max_len=start.max_len,
        vocabulary=vocabulary,
        value_mean=np.zeros(size),
        value_std=np.ones(size),
        value_log=np.zeros(size, dtype=bool),
    )
    start_ids = {c: i + 2 for i, c in enumerate(start.vocabulary)}
    fresh_ids = {c: i + 2 for i, c in enumerate(fresh.vocabulary)}
    for i, code in enumerate(vocabulary):
        source, j = (start, start_ids[code]) if code in start_ids else (fresh, fresh_ids[code])
        merged.value_mean[i + 2] = source.value_mean[j]
        merged.value_std[i + 2] = source.value_std[j]
        merged.value_log[i + 2] = source.value_log[j]
    return merged, added


def extend_vocabulary(weights: NetWeights, encoder: TokenEncoder) -> NetWeights:
    """``weights`` re-indexed to ``encoder``'s vocabulary (a superset of theirs).

    Rows of existing codes move to their new ids; new codes copy the unknown-code row.
    """
    if encoder.vocabulary == weights.encoder.vocabulary:
        return weights
    old_ids = {c: i + 2 for i, c in enumerate(weights.encoder.vocabulary)}
    missing = [c for c in weights.encoder.vocabulary if c not in set(encoder.vocabulary)]
    if missing:
        raise ValueError(f"the new vocabulary drops {len(missing)} codes of the old one")
    source = np.array(
        [0, UNKNOWN, *(old_ids.get(c, UNKNOWN) for c in encoder.vocabulary)], dtype=np.int64
    )
    state = dict(weights.state)
    for name in VOCABULARY_TABLES:
        state[name] = weights.state[name][source].copy()
    return NetWeights(
        kind=weights.kind,
        config=dict(weights.config),
        encoder=encoder,
        state=state,
        origin=weights.origin,
        parent=weights.parent,
    )


def choose_start(
    pretrained: NetWeights, champion: NetWeights | None, options: ForecastOptions
) -> tuple[NetWeights, str]:
    """(weights to start from, why): the champion's fine-tuned net when it is compatible."""
    if pretrained.config.get("dim") != options.dim or pretrained.encoder.max_len != (
        options.max_len
    ):
        raise IncrementalRefused(
            f"the architecture changed (dim {pretrained.config.get('dim')} -> {options.dim}, "
            f"max_len {pretrained.encoder.max_len} -> {options.max_len}): the kept weights do not fit"
        )
    if champion is None:
        return pretrained, "pretrained encoder (the champion keeps no fine-tuned weights)"
    if champion.kind != pretrained.kind:
        return pretrained, (
            f"pretrained encoder (the champion is a {champion.kind}, not a {pretrained.kind})"
        )
    if champion.parent != pretrained.checksum:
        return pretrained, (
            "pretrained encoder (the champion was fine-tuned from an earlier pretraining)"
        )
    if champion.config != pretrained.config:
        return pretrained, "pretrained encoder (the champion's architecture differs)"
    return champion, "champion's fine-tuned weights (descended from this pretrained encoder)"


def finetune_incremental(
    events: Any,
    labels: Any,
    *,
    pretrained: NetWeights,
    champion: NetWeights | None = None,
    options: ForecastOptions | None = None,
    epochs: int = 3,
) -> tuple[ForecastModel, dict[str, Any]]:
    """A few epochs of fine-tuning from kept weights; returns the model and a log of what ran.

    Raises :class:`IncrementalRefused` when the weights cannot be reused (the log's reason).
    """
    from predictions.ml.calibration import fit_calibrator
    from predictions.ml.export import OnnxModel, export_onnx
    from predictions.ml.pipeline import library_versions
    from predictions.ml.timeline.networks import EmbeddingHead
    from predictions.ml.timeline.training import finetune, net_from_weights, net_weights

    options = options or ForecastOptions()
    if pretrained.kind not in SEQUENCE_MODELS:
        raise IncrementalRefused(f"{pretrained.kind!r} is not a sequence model")
    started = time.perf_counter()
    run = _Run(events, labels, replace(options, algorithms=[pretrained.kind]), None)
    start, why = choose_start(pretrained, champion, options)
    corpus = pretraining_corpus(run.timelines, run.labels)
    fresh = TokenEncoder(max_len=options.max_len).fit(run.timelines, corpus)
    encoder, added = merged_encoder(start.encoder, fresh)
    growth = len(added) / max(len(start.encoder.vocabulary), 1)
    if growth > MAX_VOCABULARY_GROWTH:
        raise IncrementalRefused(
            f"{len(added)} new codes since the weights were trained ({growth:.0%} of a "
            f"{len(start.encoder.vocabulary)}-code vocabulary, limit "
            f"{MAX_VOCABULARY_GROWTH:.0%}): a full refit is needed"
        )
    size_before = start.encoder.vocabulary_size
    start = extend_vocabulary(start, encoder)
    encoder_weights = extend_vocabulary(pretrained, encoder)
    codes, continuous = encoder.encode(run.timelines, run.histories)
    tuned = finetune(
        net_from_weights(start),
        _config(start),
        encoder,
        codes,
        continuous,
        run.y,
        run.groups,
        max_epochs=epochs,
        seed=options.seed,
    )
    calibrator = fit_calibrator(tuned.validation_logits, run.y[tuned.validation_rows].astype(int))
    example = {"codes": codes[:2], "continuous": continuous[:2]}
    model = ForecastModel(
        name=pretrained.kind,
        family="sequence",
        params={"dim": options.dim, "max_len": options.max_len},
        token_encoder=encoder,
        calibrator=calibrator,
        onnx=OnnxModel(export_onnx(tuned.net, example, output_name="logit")),
    )
    head = EmbeddingHead(net_from_weights(encoder_weights))
    model.embedder = TimelineEmbedder(
        kind=pretrained.kind,
        encoder=encoder,
        onnx=OnnxModel(export_onnx(head, example, output_name="embedding")),
    )
    finetuned = net_weights(
        tuned.net, _config(start), encoder, "finetuned", parent=pretrained.checksum
    )
    # The monthly encoder travels on unchanged (new codes are extended again on each night).
    model.weights = TimelineWeights(pretrained={pretrained.kind: pretrained}, finetuned=finetuned)
    log = {
        "start": start.origin,
        "start_reason": why,
        "start_checksum": tuned.log.start_checksum,
        "pretrained_checksum": pretrained.checksum,
        "champion_checksum": champion.checksum if champion is not None else None,
        "vocabulary": {
            "path": "extended" if added else "unchanged",
            "size_before": size_before,
            "size_after": encoder.vocabulary_size,
            "new_codes": len(added),
            "how": "new codes' embedding rows initialised from the unknown-code row"
            if added
            else "no new codes",
        },
        "finetune": tuned.log.as_dict(),
        "finetuned_checksum": finetuned.checksum,
        "seconds": round(time.perf_counter() - started, 1),
    }
    model.metadata = {"library_versions": library_versions(), "incremental": log}
    return model, log


def _config(weights: NetWeights) -> Any:
    from predictions.ml.timeline.training import NetConfig

    return NetConfig(weights.kind, **weights.config)
