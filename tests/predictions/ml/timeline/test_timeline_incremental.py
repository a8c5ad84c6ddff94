"""Kept weights and incremental fine-tuning (the nightly refit of a served sequence model)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from predictions.ml.timeline.artifacts import load_forecast_model, save_forecast_model
from predictions.ml.timeline.events import read_events
from predictions.ml.timeline.incremental import (
    IncrementalRefused,
    extend_vocabulary,
    finetune_incremental,
    merged_encoder,
)
from predictions.ml.timeline.tokens import UNKNOWN, TokenEncoder
from predictions.ml.timeline.training import net_from_weights, predict_logits
from predictions.ml.timeline.weights import state_checksum


@pytest.fixture(scope="module")
def pretrained(trained_gru):
    return trained_gru.model.weights.pretrained["gru"]


def _with_new_codes(events: pd.DataFrame, n_codes: int, valued: bool = True) -> pd.DataFrame:
    """Every subject gets ``n_codes`` codes never seen before, one day after its first event."""
    first = events[events["time"].notna()].groupby("subject_id")["time"].min()
    rows = [
        (
            subject,
            when + np.timedelta64(1, "D"),
            f"LOINC/NEW-{i}",
            float(i) if valued else np.nan,
            None,
        )
        for subject, when in first.items()
        for i in range(n_codes)
    ]
    return read_events(pd.concat([events, pd.DataFrame(rows, columns=events.columns)]))


def test_the_artifact_keeps_the_pretrained_encoder_weights(trained_gru, tmp_path) -> None:
    weights = trained_gru.model.weights
    assert weights is not None
    assert "gru" in weights.pretrained
    kept = weights.pretrained["gru"]
    assert kept.checksum == state_checksum(kept.state)
    assert kept.state["code_embedding.weight"].shape[0] == kept.encoder.vocabulary_size
    info = save_forecast_model(trained_gru.model, tmp_path / "m.joblib")
    loaded = load_forecast_model(info.path, info.sha256).weights
    assert loaded is not None
    reloaded = loaded.pretrained["gru"]
    assert reloaded.checksum == kept.checksum
    for name, array in kept.state.items():
        np.testing.assert_array_equal(reloaded.state[name], array)


def test_incremental_finetune_starts_from_the_pretrained_weights_and_is_seeded(
    small_events, small_labels, tiny_options, pretrained
) -> None:
    first, log = finetune_incremental(
        small_events, small_labels, pretrained=pretrained, options=tiny_options, epochs=2
    )
    again, log_again = finetune_incremental(
        small_events, small_labels, pretrained=pretrained, options=tiny_options, epochs=2
    )
    _other, log_other = finetune_incremental(
        small_events,
        small_labels,
        pretrained=pretrained,
        options=replace(tiny_options, seed=1),
        epochs=2,
    )
    assert log["start"] == "pretrained"
    assert log["start_checksum"] == pretrained.checksum
    assert log["vocabulary"]["path"] == "unchanged"
    assert first.weights is not None
    assert first.weights.finetuned is not None
    assert first.weights.finetuned.parent == pretrained.checksum
    # Same seed, same weights and the same forecasts; another seed trains differently.
    assert log_again["finetuned_checksum"] == log["finetuned_checksum"]
    assert log_other["finetuned_checksum"] != log["finetuned_checksum"]
    codes, continuous = first.token_encoder.encode(  # type: ignore[union-attr]
        *_histories(small_events, small_labels)
    )
    np.testing.assert_array_equal(first.logits(codes, continuous), again.logits(codes, continuous))


def test_a_compatible_champion_is_the_starting_point(
    small_events, small_labels, tiny_options, pretrained
) -> None:
    champion, _ = finetune_incremental(
        small_events, small_labels, pretrained=pretrained, options=tiny_options, epochs=1
    )
    assert champion.weights is not None
    assert champion.weights.finetuned is not None
    _, log = finetune_incremental(
        small_events,
        small_labels,
        pretrained=pretrained,
        champion=champion.weights.finetuned,
        options=tiny_options,
        epochs=1,
    )
    assert log["start"] == "finetuned"
    assert log["start_checksum"] == champion.weights.finetuned.checksum
    assert log["start_checksum"] != pretrained.checksum


def test_new_codes_extend_the_embedding_table_without_changing_old_forecasts(
    small_events, small_labels, tiny_options, pretrained
) -> None:
    events = _with_new_codes(small_events, 3, valued=False)
    model, log = finetune_incremental(
        events, small_labels, pretrained=pretrained, options=tiny_options, epochs=1
    )
    vocabulary = log["vocabulary"]
    assert vocabulary["path"] == "extended"
    assert vocabulary["new_codes"] == 3
    assert vocabulary["size_after"] == vocabulary["size_before"] + 3
    assert {"LOINC/NEW-0", "LOINC/NEW-1", "LOINC/NEW-2"} <= set(model.token_encoder.vocabulary)  # type: ignore[union-attr]
    # The extension itself: old codes keep their rows, new codes copy the unknown-code row, so a
    # history scores the same before and after (its new codes were "unknown" before; valued new
    # codes would differ only by their own value standardisation).
    extended = extend_vocabulary(pretrained, model.token_encoder)  # type: ignore[arg-type]
    new_id = model.token_encoder.vocabulary.index("LOINC/NEW-0") + 2  # type: ignore[union-attr]
    np.testing.assert_array_equal(
        extended.state["code_embedding.weight"][new_id],
        pretrained.state["code_embedding.weight"][UNKNOWN],
    )
    timelines, histories = _histories(events, small_labels)
    before = predict_logits(
        net_from_weights(pretrained), *pretrained.encoder.encode(timelines, histories)
    )
    after = predict_logits(
        net_from_weights(extended), *extended.encoder.encode(timelines, histories)
    )
    np.testing.assert_allclose(after, before, atol=1e-5)


def test_too_many_new_codes_refuse_incremental_finetuning_with_the_reason(
    small_events, small_labels, tiny_options, pretrained
) -> None:
    many = int(len(pretrained.encoder.vocabulary) * 0.3) + 1
    with pytest.raises(IncrementalRefused, match=r"new codes .* a full refit is needed"):
        finetune_incremental(
            _with_new_codes(small_events, many),
            small_labels,
            pretrained=pretrained,
            options=tiny_options,
            epochs=1,
        )


def test_a_changed_architecture_refuses_incremental_finetuning(
    small_events, small_labels, tiny_options, pretrained
) -> None:
    with pytest.raises(IncrementalRefused, match="architecture changed"):
        finetune_incremental(
            small_events,
            small_labels,
            pretrained=pretrained,
            options=replace(tiny_options, dim=tiny_options.dim * 2),
            epochs=1,
        )


def test_merged_encoder_keeps_old_statistics() -> None:
    old = TokenEncoder(max_len=8, vocabulary=["A", "C"])
    old.value_mean, old.value_std = np.array([0, 0, 1.0, 3.0]), np.array([1, 1, 2.0, 4.0])
    old.value_log = np.zeros(4, bool)
    fresh = TokenEncoder(max_len=8, vocabulary=["A", "B", "C"])
    fresh.value_mean, fresh.value_std = np.array([0, 0, 9.0, 5.0, 9.0]), np.ones(5)
    fresh.value_log = np.zeros(5, bool)
    merged, added = merged_encoder(old, fresh)
    assert added == ["B"]
    assert merged.vocabulary == ["A", "B", "C"]
    np.testing.assert_array_equal(merged.value_mean, [0, 0, 1.0, 5.0, 3.0])
    np.testing.assert_array_equal(merged.value_std, [1, 1, 2.0, 1.0, 4.0])


def _histories(events: pd.DataFrame, labels: pd.DataFrame):
    from predictions.ml.timeline.events import Timelines

    timelines = Timelines.from_frame(events)
    return timelines, timelines.histories(
        labels["subject_id"].to_numpy(dtype=np.int64), labels["prediction_time"].to_numpy()
    )
