"""Synchronous predictions on inputs sent inline: the prediction API and CDS Hooks.

The only writer of ModelUse and CdsCard. The inputs concern no stored patient: they are validated through
the clinical catalogue exactly as a visit's are (:func:`visits.services.observation_validate`:
units converted to the canonical unit, impossible values refused with the code named), turned
into the engine's record (the same columns :func:`predictions.visit_records.visit_record`
builds), scored by the task's active version through the engine's serving path
(``TrainedModel.predict_one``, artifacts loaded once per process by
:func:`predictions.ml.artifacts.load_model`), and checked by the same clinical rules as advice.
Each call is accounted for as model use (actor, API token or EHR client, version, a hash of the
inputs, row count, time) in one INSERT; the inputs themselves are never stored or logged.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.utils import timezone

from medai_site.compiled_query import (
    insert_returning_pk,
    insert_returning_pk_where,
    insert_returning_pks,
    mark_saved,
)
from medai_site.errors import InvalidInput, ModelUnavailable
from medai_site.request_context import current_request_id
from medai_site.roles import account_of
from predictions import rules, why
from predictions.ml.artifacts import load_model
from predictions.ml.errors import EngineError
from predictions.ml.pipeline import TrainedModel
from predictions.models import CdsCard, ModelUse, ModelVersion, PredictionTask
from predictions.payload import Alert, Contribution
from predictions.rules import ObservationFact, evaluate_rules, row_alerts
from predictions.visit_records import OTHER_CLASS, observation_column
from predictions.wording import category_display, feature_label
from visits.catalogue import BY_NAME
from visits.models import ObservationDefinition
from visits.services import MAX_AGE_YEARS, ObservationInput, observation_validate

MAX_BATCH_ROWS = 1000
# The catalogue is loaded by migrations and read-only in the admin; re-read it now and then so a
# long-lived worker still notices a new migration's rows after a deploy without a restart.
DEFINITIONS_TTL_SECONDS = 300.0
RULE_SUGGESTIONS = 3  # the allergy-conflict rule looks at the top three suggested categories


@dataclass(frozen=True)
class PredictionInput:
    """One row: what a visit would record, sent inline (nothing is stored)."""

    age: float | None = None
    sex: str = ""
    visit_type: str = ""
    chief_complaint: str = ""
    history: str = ""
    physical_exam: str = ""
    observations: tuple[ObservationInput, ...] = ()
    allergies: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClassProbability:
    label: str
    display: str
    probability: float


@dataclass(frozen=True)
class RowPrediction:
    predicted: str
    probabilities: list[ClassProbability]
    contributions: list[Contribution]
    abstained: bool
    abstain_reasons: list[str]
    alerts: list[Alert]
    input_hash: str


@dataclass(frozen=True)
class PredictionResult:
    task: PredictionTask
    version: ModelVersion
    rows: list[RowPrediction]
    input_hash: str
    compute_ms: float = 0.0
    classes: list[str] = field(default_factory=list)
    model_use_id: int | None = None
    pending_use: ModelUse | None = None  # predictions_make(record=False): not written yet


# --- the catalogue, cached per process ------------------------------------------------------------
_definitions: dict[str, ObservationDefinition] = {}
_definitions_loaded_at = -DEFINITIONS_TTL_SECONDS
_definitions_lock = threading.Lock()


def observation_definitions() -> dict[str, ObservationDefinition]:
    """Every catalogue row by code (one query per process every few minutes, not per request)."""
    global _definitions, _definitions_loaded_at
    now = time.monotonic()
    if now - _definitions_loaded_at < DEFINITIONS_TTL_SECONDS:
        return _definitions
    with _definitions_lock:
        if now - _definitions_loaded_at >= DEFINITIONS_TTL_SECONDS:
            _definitions = {d.code: d for d in ObservationDefinition.objects.all()}
            _definitions_loaded_at = now
    return _definitions


def observation_definitions_forget() -> None:
    """Tests (and a deploy hook) make the next call read the catalogue again."""
    global _definitions_loaded_at
    _definitions_loaded_at = -DEFINITIONS_TTL_SECONDS


def observation_code(code_or_name: str) -> str:
    """A catalogue code from a code or a display name/alias ("Heart rate" -> "8867-4")."""
    text = (code_or_name or "").strip()
    if text in observation_definitions():
        return text
    return BY_NAME.get(text.casefold(), text)


# --- the model ---------------------------------------------------------------------------------------
def servable_version(task: PredictionTask) -> ModelVersion:
    """The version that answers for ``task``, or ModelUnavailable saying why there is none."""
    if task.kind == PredictionTask.Kind.FORECAST:
        # A forecast reads a patient's whole timeline; inline inputs of one visit cannot feed it.
        raise ModelUnavailable(
            f"The model '{task.slug}' forecasts from a patient's course and is not served on "
            "inline inputs; its forecasts appear on the patient chart."
        )
    if not task.enabled:
        raise ModelUnavailable(f"The model '{task.slug}' is switched off.")
    if task.active_version is None:
        raise ModelUnavailable(f"The model '{task.slug}' has no active version yet.")
    return task.active_version


def serving_model(version: ModelVersion) -> TrainedModel:
    """The version's fitted model, loaded once per process (sha256 and library checks first)."""
    try:
        return load_model(version.artifact_path, version.artifact_sha256)
    except (EngineError, OSError) as exc:
        raise ModelUnavailable(
            f"Model {version.task.slug} v{version.number} cannot be used: {exc}. "
            "An admin should roll back or switch the model off."
        ) from exc


class ServingChanged(ModelUnavailable):
    """The task read for a request no longer answers with that version (switched off,
    promoted or rolled back meanwhile): nothing was recorded, and the answer must not be given.
    The caller may read the task afresh and score again."""


@functools.cache
def _still_serving() -> str:
    """SQL true while task %s is enabled and answers with version %s (the model-use write's
    condition: the answer and its record agree with the task as it is, not as it was read)."""
    meta = PredictionTask._meta
    table, key = meta.db_table, meta.pk.column
    enabled, active = meta.get_field("enabled").column, meta.get_field("active_version").column
    # B608: names from the model's metadata; the ids are parameters.
    return f"EXISTS (SELECT 1 FROM {table} WHERE {key} = %s AND {enabled} AND {active} = %s)"  # noqa: S608  # nosec B608


# --- inputs ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreparedRow:
    record: dict[str, Any]
    facts: dict[str, ObservationFact]
    free_text: str
    allergies: list[str]
    input_hash: str

    @functools.cached_property
    def alerts(self) -> list[rules.Alert]:
        """The rules that read only this row (:func:`predictions.rules.row_alerts`): computed
        once, however many models score the row."""
        return row_alerts(facts=self.facts, free_text=self.free_text)


def _row_error(exc: InvalidInput, prefix: str) -> InvalidInput:
    if not prefix:
        return exc
    return InvalidInput(
        f"{prefix}: {exc.message}", fields={f"{prefix}.{k}": v for k, v in exc.fields.items()}
    )


def prepare_row(entry: PredictionInput, *, prefix: str = "") -> PreparedRow:
    """Validate one row through the catalogue and build the engine's record from it.

    Every observation error of the row is reported together (field names are the codes, as for
    visits); ``prefix`` ("rows[3]") names the row in a batch.
    """
    definitions = observation_definitions()
    record: dict[str, Any] = {
        "patient_id": "",
        "age": None if entry.age is None else float(min(entry.age, MAX_AGE_YEARS)),
        "sex": entry.sex or None,
        "visit_type": entry.visit_type or None,
        "chief_complaint": entry.chief_complaint,
        "history": entry.history,
    }
    facts: dict[str, ObservationFact] = {}
    errors: dict[str, list[str]] = {}
    messages: list[str] = []
    seen: set[str] = set()
    for observation in entry.observations:
        code = observation_code(observation.code)
        if code in seen:
            message = f"Observation {code} appears more than once."
            errors[code] = ["Duplicate code."]
            messages.append(message)
            continue
        seen.add(code)
        try:
            validated = observation_validate(
                ObservationInput(code=code, value=observation.value, unit=observation.unit),
                definitions.get(code),
            )
        except InvalidInput as exc:
            errors.update(exc.fields)
            messages.append(exc.message)
            continue
        definition = validated.definition
        record[observation_column(code)] = validated.value
        facts[code] = ObservationFact(
            code=code,
            display=definition.display,
            value=validated.value,
            unit=definition.unit,
            interpretation=validated.interpretation,
            critical_low=definition.critical_low,
            critical_high=definition.critical_high,
        )
    if errors:
        raise _row_error(InvalidInput(messages[0], fields=errors), prefix)
    allergies = sorted({a.strip().casefold() for a in entry.allergies if a.strip()})
    return PreparedRow(
        record=record,
        facts=facts,
        free_text=f"{entry.chief_complaint}\n{entry.history}\n{entry.physical_exam}",
        allergies=allergies,
        input_hash=_hash({"record": record, "allergies": allergies, "exam": entry.physical_exam}),
    )


def _hash(value: Any) -> str:
    blob = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


# --- scoring -----------------------------------------------------------------------------------------
def _class_display(task: PredictionTask, label: str) -> str:
    if task.kind == PredictionTask.Kind.DIFFERENTIAL:
        return category_display(label if label == OTHER_CLASS else label.upper())
    # A risk model's classes: the engine's "positive"/"negative" (or "1"/"0").
    positive = task.config.get("label", task.name)
    if label in ("1", "positive"):
        return positive
    return f"Not {positive[:1].lower()}{positive[1:]}" if label in ("0", "negative") else label


def _class_label(task: PredictionTask, label: str) -> str:
    # The engine normalises class names to lower case; ICD-10 categories are upper case.
    if task.kind == PredictionTask.Kind.DIFFERENTIAL and label != OTHER_CLASS:
        return label.upper()
    return label


def predict_row(task: PredictionTask, model: TrainedModel, row: PreparedRow) -> RowPrediction:
    """The engine's calibrated prediction for one prepared row, with the clinical rules."""
    prediction = model.predict_one(row.record, explain_text=False)
    ranked = [
        ClassProbability(
            label=_class_label(task, label),
            display=_class_display(task, label),
            probability=round(probability, 6),
        )
        for label, probability in prediction.ranked
    ]
    suggested = (
        [c.label for c in ranked[:RULE_SUGGESTIONS] if c.label != OTHER_CLASS]
        if task.kind == PredictionTask.Kind.DIFFERENTIAL
        else []
    )
    alerts = evaluate_rules(
        facts=row.facts,
        free_text=row.free_text,
        suggested_codes=suggested,
        allergies=row.allergies,
        row=row.alerts,
    )
    return RowPrediction(
        predicted=_class_label(task, prediction.predicted),
        probabilities=ranked,
        contributions=[
            Contribution(
                feature=c["feature"],
                label=feature_label(c["feature"]),
                value=c.get("value"),
                contribution=c["contribution"],
            )
            for c in prediction.contributions
        ],
        abstained=prediction.abstain,
        abstain_reasons=[why.abstain_text(r) for r in prediction.abstain_reasons],
        alerts=[Alert(**a) for a in alerts],
        input_hash=row.input_hash,
    )


def predictions_make(
    *,
    task: PredictionTask,
    inputs: Sequence[PredictionInput | PreparedRow],
    actor: object | None,
    api_token_id: int | None = None,
    client: str = "",
    interface: str = ModelUse.Interface.API,
    batch: bool = False,
    record: bool = True,
) -> PredictionResult:
    """Score ``inputs`` with ``task``'s active version and account for the use.

    Nothing is written when an input is invalid or the model is unavailable. ``record=False``
    leaves the model-use row unwritten in ``result.pending_use``: the caller scoring several
    models for one call writes them all in one statement (:func:`cds_cards_record`, with the
    cards that name them) before anything is answered. An input already through :func:`prepare_row` is not prepared again
    (a caller scoring one row with several models validates it once).
    """
    if not inputs:
        raise InvalidInput("Send at least one row.", fields={"rows": ["Required."]})
    if len(inputs) > MAX_BATCH_ROWS:
        raise InvalidInput(
            f"At most {MAX_BATCH_ROWS} rows per request.",
            fields={"rows": [f"At most {MAX_BATCH_ROWS} rows."]},
        )
    version = servable_version(task)
    started = time.perf_counter()
    prepared = [
        entry
        if isinstance(entry, PreparedRow)
        else prepare_row(entry, prefix=f"rows[{i}]" if batch else "")
        for i, entry in enumerate(inputs)
    ]
    model = serving_model(version)
    rows = [predict_row(task, model, row) for row in prepared]
    digest = rows[0].input_hash if len(rows) == 1 else _hash([r.input_hash for r in rows])
    compute_ms = (time.perf_counter() - started) * 1000
    use = _model_use(
        version=version,
        actor=actor,
        api_token_id=api_token_id,
        client=client,
        interface=interface,
        input_hash=digest,
        rows=len(rows),
    )
    if record and insert_returning_pk_where(use, _still_serving(), [task.pk, version.pk]) is None:
        raise ServingChanged(
            f"The model '{task.slug}' was switched off, promoted or rolled back while this "
            "request was answered; send it again."
        )
    return PredictionResult(
        task=task,
        version=version,
        rows=rows,
        input_hash=digest,
        compute_ms=compute_ms,
        classes=[_class_label(task, c) for c in model.classes],
        model_use_id=use.pk,
        pending_use=None if record else use,
    )


def _model_use(
    *,
    version: ModelVersion,
    actor: object | None,
    api_token_id: int | None,
    client: str,
    interface: str,
    input_hash: str,
    rows: int,
) -> ModelUse:
    """One row per call: never the inputs, only their hash (not saved here)."""
    return ModelUse(
        at=timezone.now(),
        version=version,
        actor=account_of(actor),
        api_token_id=api_token_id,
        client=client[:200],
        interface=interface,
        input_hash=input_hash,
        rows=rows,
        request_id=current_request_id.get()[:64],
    )


def model_use_record(**kwargs: Any) -> ModelUse:
    """Write one model-use row (one compiled INSERT: medai_site.compiled_query)."""
    return insert_returning_pk(_model_use(**kwargs))


@dataclass(frozen=True)
class CardIssued:
    """A CDS Hooks card about to be returned: what its feedback will refer to.

    The model use behind it is named by id once written (``model_use_id``), or as the row
    still to be written with the cards (``model_use``: :func:`cds_cards_record` with ``uses``).
    """

    uuid: uuid.UUID
    suggestion: str
    rank: int | None = None
    model_use_id: int | None = None
    model_use: ModelUse | None = None


def cds_cards_record(
    *,
    service: str,
    client: str,
    cards: Sequence[CardIssued],
    uses: Sequence[ModelUse] = (),
) -> None:
    """Remember the cards returned to an EHR, so its feedback can name them.

    ``uses``: the call's model-use rows, not written yet (``predictions_make(record=False)``),
    written in the same statement as the cards that name them: one round trip and one commit
    for the whole answer, and no card is ever stored without the use it names (nor a use
    without its cards). Otherwise one compiled INSERT
    (:func:`medai_site.compiled_query.insert_returning_pks`).
    """
    issued_at = timezone.now()  # auto_now_add is save()'s; these INSERTs set it themselves
    rows = [
        CdsCard(
            uuid=c.uuid,
            service=service,
            suggestion=c.suggestion[:40],
            rank=c.rank,
            model_use_id=c.model_use_id,
            client=client[:200],
            issued_at=issued_at,
        )
        for c in cards
    ]
    versions = [u.version_id for u in uses]
    if not uses or not rows:
        insert_returning_pks(list(uses))
        insert_returning_pks(rows)
    elif len(set(versions)) < len(versions):  # the statement tells uses apart by version
        insert_returning_pks(list(uses))
        for row, card in zip(rows, cards, strict=True):
            if card.model_use is not None:
                row.model_use_id = card.model_use.pk
        insert_returning_pks(rows)
    else:
        _uses_and_cards_insert(uses, rows, [c.model_use for c in cards])


def _uses_and_cards_insert(
    uses: Sequence[ModelUse], cards: list[CdsCard], named: list[ModelUse | None]
) -> None:
    """One statement: the model-use rows (one version each), then the cards, each joined to the
    use of its version by the database (a card's key to its use exists only once the use is
    written). Sets the uses' keys."""
    connection = connections["default"]
    use_fields, card_fields, card_types, version_type = _uses_and_cards_shape()
    quote = connection.ops.quote_name
    use_row = "(" + ", ".join(["%s"] * len(use_fields)) + ")"
    card_row = "(" + ", ".join(f"CAST(%s AS {t})" for t in (*card_types, version_type)) + ")"
    names = ", ".join(quote(f.column) for f in card_fields)
    use_table, card_table = quote(ModelUse._meta.db_table), quote(CdsCard._meta.db_table)
    link = quote(CdsCard._meta.get_field("model_use").column)
    sql = (
        # B608: table and column names from the models' metadata, quoted; values are parameters.
        f"WITH uses AS (INSERT INTO {use_table} "  # noqa: S608  # nosec B608
        f"({', '.join(quote(f.column) for f in use_fields)}) "
        f"VALUES {', '.join([use_row] * len(uses))} "
        f"RETURNING {quote(ModelUse._meta.pk.column)} AS id, "
        f"{quote(ModelUse._meta.get_field('version').column)} AS version), "
        f"cards AS (INSERT INTO {card_table} ({names}, {link}) "
        f"SELECT {', '.join('c.' + quote(f.column) for f in card_fields)}, uses.id "
        f"FROM (VALUES {', '.join([card_row] * len(cards))}) "
        f"AS c ({names}, version) LEFT JOIN uses ON uses.version = c.version) "
        "SELECT id, version FROM uses"
    )
    values = [
        f.get_db_prep_save(getattr(u, f.attname), connection) for u in uses for f in use_fields
    ]
    for card, use in zip(cards, named, strict=True):
        values += [f.get_db_prep_save(getattr(card, f.attname), connection) for f in card_fields]
        values.append(None if use is None else use.version_id)
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        keys = {version: pk for pk, version in cursor.fetchall()}
    for use in uses:
        mark_saved(use, keys[use.version_id])


@functools.cache
def _uses_and_cards_shape() -> tuple[list[Any], list[Any], list[str], str]:
    """Columns of the two INSERTs (all but the keys; a card's use is joined in) and the SQL types
    the cards' VALUES are cast to (a VALUES list of parameters has no types of its own)."""
    connection = connections["default"]
    use_fields = [f for f in ModelUse._meta.concrete_fields if not f.primary_key]
    card_fields = [
        f for f in CdsCard._meta.concrete_fields if not f.primary_key and f.name != "model_use"
    ]
    # Every concrete field has a column type (db_type is None only for virtual ones).
    card_types = [str(f.db_type(connection)) for f in card_fields]
    version_type = str(ModelUse._meta.get_field("version").db_type(connection))
    return use_fields, card_fields, card_types, version_type
