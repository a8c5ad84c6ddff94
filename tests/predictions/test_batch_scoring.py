"""Batch re-scoring: the feature-row cache (hits, invalidation, encryption at rest) and the run
split into chunks (the Celery group), against the serial path ``predict_frame(visits_frame())``."""

from __future__ import annotations

import numpy as np
import pytest
from django.db import connection
from django.db.models import F

from medai_site.blob_encryption import decrypt_blob
from medai_site.celery import app
from medai_site.errors import Forbidden, InvalidInput, ModelUnavailable
from predictions.ml import feature_rows
from predictions.ml.artifacts import load_model
from predictions.models import FeatureRowBlock, PredictionTask, ScoringChunk, ScoringRun
from predictions.selectors import SYSTEM, scoring_run_scores
from predictions.services import feature_cache
from predictions.services.batch_scoring import (
    chunk_ranges,
    scoring_chunk_compute,
    scoring_run_start,
)
from predictions.visit_records import visits_frame
from tests.factories import PatientFactory
from visits.models import Visit
from visits.services import ObservationInput, visit_create, visit_update

pytestmark = pytest.mark.django_db

CHUNK = 150  # the 400-visit population in about three chunks


def differential() -> PredictionTask:
    return PredictionTask.objects.get(slug="differential")


def serial_scores(version, visits=None):
    model = load_model(version.artifact_path, version.artifact_sha256)
    frame = visits_frame(visits if visits is not None else Visit.objects.all())
    return frame.index.to_numpy(), model.predict_frame(frame)


def score_in_process(actor=None) -> ScoringRun:
    """A run whose chunks are computed here, one after another, as the group's tasks would."""
    run = scoring_run_start(task=differential(), actor=actor, chunk_visits=CHUNK)
    for first, last in chunk_ranges(CHUNK):
        scoring_chunk_compute(run_id=run.pk, first_visit_id=first, last_visit_id=last)
    run.refresh_from_db()
    return run


def hits(run: ScoringRun) -> int:
    return sum(run.chunks.values_list("cache_hits", flat=True))


@pytest.fixture
def eager_celery():
    """This test runs the run's Celery group in-process (eager), saying so."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def open_visit(trained, doctor_a, team_a):
    return visit_create(
        patient=PatientFactory(care_teams=[team_a]),
        attending=doctor_a,
        actor=doctor_a,
        chief_complaint="crushing chest pain and sweating",
        observations=[ObservationInput("8867-4", 96, "/min"), ObservationInput("2708-6", 97, "%")],
    )


def test_the_group_of_chunks_scores_every_visit_exactly_as_the_serial_path(
    trained, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = scoring_run_start(task=differential(), actor=None, chunk_visits=CHUNK)
    run.refresh_from_db()
    assert run.status == ScoringRun.Status.DONE
    assert run.finished_at is not None
    assert run.chunks.count() == run.chunks_total == len(chunk_ranges(CHUNK)) >= 3
    scores = scoring_run_scores(viewer=SYSTEM, run_id=run.pk)
    ids, expected = serial_scores(trained.differential)
    assert (
        scores.index.tolist() == ids.tolist() == sorted(Visit.objects.values_list("pk", flat=True))
    )
    assert np.array_equal(scores.to_numpy(), expected)  # bit for bit, not merely close
    assert (
        list(scores.columns)
        == load_model(
            trained.differential.artifact_path, trained.differential.artifact_sha256
        ).classes
    )


def test_a_second_run_reads_every_row_from_the_cache_and_scores_the_same(trained):
    first = score_in_process()
    assert hits(first) == 0
    second = score_in_process()
    assert hits(second) == Visit.objects.count() == second.visits_total
    assert np.array_equal(
        scoring_run_scores(viewer=SYSTEM, run_id=second.pk).to_numpy(),
        scoring_run_scores(viewer=SYSTEM, run_id=first.pk).to_numpy(),
    )


@pytest.mark.parametrize(
    "change",
    [
        {"observations": [ObservationInput("8867-4", 131, "/min")]},
        {"chief_complaint": "cough with green sputum and fever"},
    ],
    ids=["observation", "free-text"],
)
def test_a_visit_whose_inputs_changed_is_featurised_again_and_only_it(
    trained, open_visit, doctor_a, change
):
    before = scoring_run_scores(viewer=SYSTEM, run_id=score_in_process().pk)
    visit_update(visit=open_visit, actor=doctor_a, **change)
    run = score_in_process()
    assert hits(run) == Visit.objects.count() - 1
    after = scoring_run_scores(viewer=SYSTEM, run_id=run.pk)
    _, fresh = serial_scores(trained.differential, Visit.objects.filter(pk=open_visit.pk))
    assert np.array_equal(after.loc[open_visit.pk].to_numpy(), fresh[0])
    assert not np.array_equal(after.loc[open_visit.pk].to_numpy(), before.loc[open_visit.pk])
    others = after.index != open_visit.pk
    assert np.array_equal(after[others].to_numpy(), before[others].to_numpy())


def test_a_patient_whose_sex_is_corrected_has_their_visits_featurised_again(trained):
    score_in_process()
    visit = Visit.objects.order_by("pk").first()
    sex = "female" if visit.patient.sex == "male" else "male"
    # No service changes a patient's sex yet; the trigger on the patient table sees it regardless.
    type(visit.patient).objects.filter(pk=visit.patient_id).update(sex=sex)
    changed = Visit.objects.filter(patient_id=visit.patient_id).count()
    assert hits(score_in_process()) == Visit.objects.count() - changed


def test_another_featuriser_version_does_not_read_the_old_rows(trained, monkeypatch):
    score_in_process()
    old_key = feature_cache.featuriser_key(trained.differential)
    assert FeatureRowBlock.objects.filter(featuriser_key=old_key).count() >= 3
    monkeypatch.setattr(feature_cache, "FEATURE_ROW_VERSION", "changed-featuriser")
    assert feature_cache.featuriser_key(trained.differential) != old_key
    run = score_in_process()
    assert hits(run) == 0
    # Blocks under a featuriser no active version uses are pruned when a run starts.
    score_in_process()
    assert not FeatureRowBlock.objects.filter(featuriser_key=old_key).exists()


def test_feature_rows_and_scores_are_encrypted_at_rest(trained):
    run = score_in_process()
    block = FeatureRowBlock.objects.order_by("first_visit_id").first()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT payload FROM {FeatureRowBlock._meta.db_table} WHERE id = %s",  # noqa: S608
            [block.pk],
        )
        raw = bytes(cursor.fetchone()[0])
    context = feature_cache._context(block.featuriser_key, block.first_visit_id)
    rows = feature_rows.unpack(decrypt_blob(raw, context=context))
    assert len(rows.ids) == block.visits > 0
    # Neither the format's marker, nor any run of the rows' values, nor the visit ids appear.
    assert feature_rows.MAGIC not in raw
    assert rows.rows.data[:4].tobytes() not in raw
    assert rows.rows.data[-4:].tobytes() not in raw
    assert rows.ids[:4].astype("<i8").tobytes() not in raw
    chunk = run.chunks.order_by("first_visit_id").first()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT payload FROM {ScoringChunk._meta.db_table} WHERE id = %s",  # noqa: S608
            [chunk.pk],
        )
        raw_scores = bytes(cursor.fetchone()[0])
    scores = scoring_run_scores(viewer=SYSTEM, run_id=run.pk).to_numpy()
    assert scores[0].astype("<f8").tobytes() not in raw_scores


def test_a_redelivered_chunk_is_stored_once_and_the_run_completes_once(trained):
    run = scoring_run_start(task=differential(), actor=None, chunk_visits=CHUNK)
    ranges = chunk_ranges(CHUNK)
    first, last = ranges[0]
    assert scoring_chunk_compute(run_id=run.pk, first_visit_id=first, last_visit_id=last)
    assert scoring_chunk_compute(run_id=run.pk, first_visit_id=first, last_visit_id=last) is None
    run.refresh_from_db()
    assert run.status == ScoringRun.Status.RUNNING
    for first, last in ranges[1:]:
        scoring_chunk_compute(run_id=run.pk, first_visit_id=first, last_visit_id=last)
    run.refresh_from_db()
    assert run.status == ScoringRun.Status.DONE
    assert run.chunks.count() == len(ranges)
    assert sum(run.chunks.values_list("visits", flat=True)) == Visit.objects.count()


def test_a_run_that_cannot_score_is_refused_and_writes_nothing(trained, settings):
    with pytest.raises(InvalidInput, match="Chunk size"):
        scoring_run_start(task=differential(), actor=None, chunk_visits=0)
    with pytest.raises(InvalidInput, match="forecast"):
        scoring_run_start(task=PredictionTask.objects.get(slug="ckd-forecast"), actor=None)
    task = differential()
    task.enabled = False
    with pytest.raises(ModelUnavailable):
        scoring_run_start(task=task, actor=None)
    assert not ScoringRun.objects.exists()
    assert not FeatureRowBlock.objects.exists()


def test_batch_scores_are_read_by_the_application_only(trained, doctor_a):
    run = score_in_process()
    with pytest.raises(Forbidden):
        scoring_run_scores(viewer=doctor_a, run_id=run.pk)


def test_the_rescore_command_starts_a_run_and_names_an_unknown_task(trained):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    out = StringIO()
    call_command("rescore", "differential", "--chunk", str(CHUNK), stdout=out)
    run = ScoringRun.objects.get()
    assert f"scoring run {run.pk}: {Visit.objects.count()} visits" in out.getvalue()
    assert run.chunks_total == len(chunk_ranges(CHUNK))
    with pytest.raises(CommandError, match="No prediction task 'nope'"):
        call_command("rescore", "nope")
    with pytest.raises(CommandError, match="Chunk size"):
        call_command("rescore", "differential", "--chunk", "0")


def test_a_run_start_is_audited_and_a_wait_for_chunks_that_never_come_ends(trained, admin_user):
    """Re-scoring reads every patient's visits: who started it is in the audit trail. Waiting on
    a run whose chunks no worker stores (none running, or a chunk failed for good) must end with
    the progress said, not hang."""
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    from medai_site.models import AuditEvent

    run = scoring_run_start(task=differential(), actor=admin_user, chunk_visits=CHUNK)
    event = AuditEvent.objects.get(object_type="predictions.scoringrun", object_id=str(run.pk))
    assert (event.action, event.actor_id) == (AuditEvent.Action.CREATE, admin_user.pk)
    out = StringIO()
    with pytest.raises(CommandError, match=r"not finished after 1 s: 0 of \d+ chunks stored"):
        call_command(
            "rescore", "differential", "--chunk", str(CHUNK), "--wait", "--timeout", "1", stdout=out
        )
    assert "0 of" in out.getvalue()


def test_visits_deleted_and_added_between_runs_and_a_new_chunk_size_score_as_the_serial_path(
    trained, open_visit
):
    """The cache's index bookkeeping: a stored block that still lists a deleted visit, a visit
    the block never saw, and blocks written under another chunk size (other first ids) must all
    give the serial path's scores, bit for bit."""
    score_in_process()  # blocks now cover every visit, the open one included
    ids = list(Visit.objects.order_by("pk").values_list("pk", flat=True))
    gone = ids[len(ids) // 2]
    Visit.objects.filter(pk=gone).delete()
    added = visit_create(
        patient=open_visit.patient,
        attending=open_visit.attending,
        actor=open_visit.attending,
        chief_complaint="fever and productive cough for three days",
        observations=[ObservationInput("8310-5", 38.6, "Cel")],
    )
    run = score_in_process()
    scores = scoring_run_scores(viewer=SYSTEM, run_id=run.pk)
    expected_ids, expected = serial_scores(trained.differential)
    assert gone not in scores.index
    assert added.pk in scores.index
    assert scores.index.tolist() == expected_ids.tolist()
    assert np.array_equal(scores.to_numpy(), expected)
    assert hits(run) == Visit.objects.count() - 1  # only the new visit was featurised
    other = scoring_run_start(task=differential(), actor=None, chunk_visits=CHUNK // 3)
    for first, last in chunk_ranges(CHUNK // 3):
        scoring_chunk_compute(run_id=other.pk, first_visit_id=first, last_visit_id=last)
    rechunked = scoring_run_scores(viewer=SYSTEM, run_id=other.pk)
    assert np.array_equal(rechunked.to_numpy(), expected)


def inputs_version(visit_id: int) -> int:
    from predictions.models import VisitInputsVersion

    return VisitInputsVersion.objects.get(visit_id=visit_id).version


def test_the_database_gives_a_visit_a_new_inputs_version_on_every_write_to_its_inputs(
    open_visit, doctor_a
):
    """The triggers: each write to what a featuriser reads (whoever writes, services or plain
    SQL) moves the visit to a value never used before; other writes leave it."""
    from predictions.models import VisitInputsVersion
    from visits.models import Observation

    seen = [inputs_version(open_visit.pk)]

    def moved() -> bool:
        now = inputs_version(open_visit.pk)
        fresh = now not in seen
        seen.append(now)
        return fresh

    visit_update(visit=open_visit, actor=doctor_a, history_present_illness="two days of pain")
    assert moved()
    Observation.objects.filter(visit=open_visit).update(value=42.0)
    assert moved()
    Observation.objects.filter(visit=open_visit).first().delete()
    assert moved()
    Visit.objects.filter(pk=open_visit.pk).update(age_years=open_visit.age_years + 1)
    assert moved()
    Visit.objects.filter(pk=open_visit.pk).update(visit_type=Visit.Type.INPATIENT)
    assert moved()
    # Not an input: the version stays.
    Visit.objects.filter(pk=open_visit.pk).update(status=Visit.Status.CLOSED)
    type(open_visit.patient).objects.filter(pk=open_visit.patient_id).update(
        sex=open_visit.patient.sex
    )
    assert inputs_version(open_visit.pk) == seen[-1]
    other = PatientFactory()
    Visit.objects.filter(pk=open_visit.pk).update(patient=other)
    assert moved()
    Observation.objects.filter(visit=open_visit).delete()
    Visit.objects.filter(pk=open_visit.pk).delete()
    assert not VisitInputsVersion.objects.filter(visit_id=open_visit.pk).exists()


def test_a_visit_without_an_inputs_version_is_featurised_on_every_run(trained):
    """A visit written while the triggers were off (no version row) is never served a cached
    row: its inputs may have changed unseen."""
    from predictions.models import VisitInputsVersion

    score_in_process()
    visit = Visit.objects.order_by("pk").first()
    VisitInputsVersion.objects.filter(visit_id=visit.pk).delete()
    for _ in range(2):
        run = score_in_process()
        assert hits(run) == Visit.objects.count() - 1
    scores = scoring_run_scores(viewer=SYSTEM, run_id=run.pk)
    _, expected = serial_scores(trained.differential)
    assert np.array_equal(scores.to_numpy(), expected)


def stored_block_of_first_chunk():
    """The cached block of the first chunk after a run, with the chunk's id range."""
    score_in_process()
    first, last = chunk_ranges(CHUNK)[0]
    key = feature_cache.featuriser_key(differential().active_version)
    block = feature_cache._cached_block(key, first)
    assert block is not None
    return block, first, last


def range_count_and_max(first: int, last: int) -> tuple[int, int]:
    from predictions.models import VisitInputsVersion

    versions = VisitInputsVersion.objects.filter(visit_id__gte=first, visit_id__lte=last)
    return versions.count(), max(versions.values_list("version", flat=True))


def test_a_block_is_current_as_a_whole_until_a_visit_of_its_range_changes(trained):
    """The whole-block check says yes only while the range's (id, version) pairs are the
    block's: an edit, a deletion, an insertion or a visit losing its version row each make it
    say no (then the per-visit check finds which rows to compute again)."""
    from predictions.models import VisitInputsVersion
    from visits.models import Observation

    block, first, last = stored_block_of_first_chunk()
    assert feature_cache.block_still_current(block, first, last)
    in_range = list(
        Visit.objects.filter(pk__gte=first, pk__lte=last)
        .order_by("pk")
        .values_list("pk", flat=True)
    )

    Visit.objects.filter(pk=in_range[3]).update(age_years=F("age_years") + 1)
    assert not feature_cache.block_still_current(block, first, last)
    block, first, last = stored_block_of_first_chunk()
    Observation.objects.filter(visit_id=in_range[4]).update(value=1.0)
    assert not feature_cache.block_still_current(block, first, last)

    block, first, last = stored_block_of_first_chunk()
    gone = Visit.objects.get(pk=in_range[5])
    Visit.objects.filter(pk=gone.pk).delete()
    assert not feature_cache.block_still_current(block, first, last)

    block, first, last = stored_block_of_first_chunk()
    gone.save(force_insert=True)  # a visit (again) inside the range: the id left free
    assert VisitInputsVersion.objects.filter(visit_id=gone.pk).exists()
    assert not feature_cache.block_still_current(block, first, last)


def test_a_block_is_not_current_when_a_visit_lost_its_version_row(trained):
    block, first, last = stored_block_of_first_chunk()
    from predictions.models import VisitInputsVersion

    VisitInputsVersion.objects.filter(visit_id=block.ids[0]).delete()
    assert not feature_cache.block_still_current(block, first, last)


def test_a_version_committed_out_of_order_makes_the_block_stale_though_count_and_max_stay(trained):
    """Why the whole-block check digests every pair instead of comparing the range's count and
    highest version: a transaction that took a lower value and commits after the block was
    stored leaves both as they were."""
    from predictions.models import VisitInputsVersion

    block, first, last = stored_block_of_first_chunk()
    before = range_count_and_max(first, last)
    visit_id, highest = int(block.ids[0]), before[1]
    # A value below the range's highest that no visit holds: as a slower transaction would
    # commit it after the block was written.
    used = set(VisitInputsVersion.objects.values_list("version", flat=True))
    late = next(v for v in range(highest - 1, 0, -1) if v not in used)
    VisitInputsVersion.objects.filter(visit_id=visit_id).update(version=late)
    assert range_count_and_max(first, last) == before
    assert not feature_cache.block_still_current(block, first, last)
    run = score_in_process()
    assert hits(run) == Visit.objects.count() - 1


def test_a_rerun_uses_the_block_this_process_kept_and_scores_the_same(trained, monkeypatch):
    """The process keeps the blocks it wrote (encrypted): a re-run reads only the range's digest
    from the database, not the blocks, and scores bit for bit as the run that computed them."""
    feature_cache.RECENT_BLOCKS.clear()
    first = score_in_process()

    def no_read(*args, **kwargs):
        raise AssertionError("the stored block was read")

    monkeypatch.setattr(feature_cache, "_stored_payload", no_read)
    second = score_in_process()
    assert hits(second) == Visit.objects.count()
    assert np.array_equal(
        scoring_run_scores(viewer=SYSTEM, run_id=second.pk).to_numpy(),
        scoring_run_scores(viewer=SYSTEM, run_id=first.pk).to_numpy(),
    )
    assert all(kept[2][:4] == b"MEB1" for kept in feature_cache.RECENT_BLOCKS._blocks.values())


def test_a_kept_block_is_not_used_once_the_stored_one_is_gone_or_rewritten(trained):
    """The kept copy stands for one write of the table's block: deleted (a cache may drop any
    block) or written again, the table decides."""
    feature_cache.RECENT_BLOCKS.clear()
    score_in_process()
    total = Visit.objects.count()
    FeatureRowBlock.objects.all().delete()
    assert hits(score_in_process()) == 0  # recomputed, not served from memory
    assert len(feature_cache.RECENT_BLOCKS._blocks) == len(chunk_ranges(CHUNK))
    first, last = chunk_ranges(CHUNK)[0]
    key = feature_cache.featuriser_key(differential().active_version)
    block = feature_cache._cached_block(key, first)
    feature_cache._store(key, first, last, block)  # the same rows, written again
    now = feature_cache.range_fingerprint(first, last, key)
    assert feature_cache.RECENT_BLOCKS.get(key, first, now) is None
    run = score_in_process()
    assert hits(run) == total
    assert feature_cache.RECENT_BLOCKS.get(key, first, now) is not None  # kept again, read once


def test_the_kept_blocks_stay_within_their_budget(trained, settings):
    feature_cache.RECENT_BLOCKS.clear()
    settings.MEDAI_FEATURE_CACHE_PROCESS_MB = 0
    score_in_process()
    assert not feature_cache.RECENT_BLOCKS._blocks
    sizes = list(
        FeatureRowBlock.objects.order_by("first_visit_id").values_list("payload", flat=True)
    )
    # Room for the two largest blocks but not three: the least recently used go first.
    settings.MEDAI_FEATURE_CACHE_PROCESS_MB = sum(sorted(len(p) for p in sizes)[-2:]) / 1_000_000
    score_in_process()
    kept = feature_cache.RECENT_BLOCKS._blocks
    assert len(kept) <= 2
    assert feature_cache.RECENT_BLOCKS._bytes == sum(len(k[2]) for k in kept.values())
    assert feature_cache.RECENT_BLOCKS._bytes <= settings.MEDAI_FEATURE_CACHE_PROCESS_MB * 1e6
    last_first = chunk_ranges(CHUNK)[-1][0]
    assert any(first == last_first for _, first in kept)
