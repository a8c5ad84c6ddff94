"""The model lifecycle (DESIGN.md): tasks, training jobs, immutable versions, advice, feedback."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from medai_site.encrypted_fields import EncryptedQuerySet, EncryptedTextField
from visits.models import Diagnosis, Visit, VisitEvent


class PredictionTask(models.Model):
    """What a model predicts, from which visits (``config``), and whether it may advise now."""

    class Kind(models.TextChoices):
        DIFFERENTIAL = "differential", "Differential diagnosis (multi-class)"
        RISK = "risk", "Binary risk"
        FORECAST = "forecast", "Forecast of a new diagnosis (patient timeline)"

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # differential: {"min_class_visits": int, "max_classes": int}
    # risk: {"positive_prefixes": ["I20", ...], "label": "coronary artery disease"}
    # forecast: {"codes": ["ICD10/N18", ...], "horizon_days": 730, "min_history_days": 365,
    #            "label": "...", "algorithms": [...], "cv": 3, "pretrain_epochs": 2, ...}
    config = models.JSONField(default=dict, blank=True)
    intended_use = models.TextField(blank=True)
    limitations = models.TextField(blank=True)
    active_version = models.OneToOneField(
        "ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="active_for"
    )
    # Kill switch: a disabled task gives no advice, whatever its active version.
    enabled = models.BooleanField(default=True)
    disabled_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class TrainingJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        ADMIN = "admin", "Admin"
        API = "api", "API"
        PAGE = "page", "Page"
        SCHEDULE = "schedule", "Nightly schedule"
        # Started by the system itself, e.g. the first models trained when the demo is seeded.
        SYSTEM = "system", "System"
        MONTHLY = "monthly", "Monthly re-pretraining"

    task = models.ForeignKey(PredictionTask, on_delete=models.PROTECT, related_name="training_jobs")
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.ADMIN)
    stage = models.CharField(max_length=60, blank=True)
    percent = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Snapshot of the training set: ids of the visits, their hash, counts per class.
    snapshot = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(percent__lte=100), name="training_percent_max_100"),
        ]

    def __str__(self) -> str:
        return f"Training job {self.pk} ({self.task_id}, {self.status})"


class ModelVersion(models.Model):
    """An immutable fitted model: written once by the training service, never edited."""

    task = models.ForeignKey(PredictionTask, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    training_job = models.OneToOneField(
        TrainingJob, null=True, blank=True, on_delete=models.PROTECT, related_name="model_version"
    )
    algorithm = models.CharField(max_length=40)
    artifact_path = models.CharField(max_length=500)
    artifact_sha256 = models.CharField(max_length=64)
    artifact_size = models.PositiveBigIntegerField()
    feature_schema = models.JSONField(default=dict)
    label_map = models.JSONField(default=dict)
    library_versions = models.JSONField(default=dict)
    data_hash = models.CharField(max_length=64)
    metrics = models.JSONField(default=dict)
    holdout_metrics = models.JSONField(default=dict)
    # Champion/challenger comparison on the same held-out visits, at creation time.
    comparison = models.JSONField(default=dict, blank=True)
    report = models.JSONField(default=dict)
    plots = models.JSONField(
        default=dict, blank=True
    )  # name -> file path relative to the model dir
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["task", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["task", "number"], name="model_version_number")
        ]

    def __str__(self) -> str:
        return f"{self.task.slug} v{self.number}"


class ActivationEvent(models.Model):
    """Append-only history of what was active when, who changed it, and why."""

    class Action(models.TextChoices):
        AUTO_PROMOTE = "auto_promote", "Promoted automatically (not worse than champion)"
        PROMOTE = "promote", "Promoted by an admin"
        ROLLBACK = "rollback", "Rolled back by an admin"
        DISABLE = "disable", "Kill switch: disabled"
        ENABLE = "enable", "Re-enabled"

    task = models.ForeignKey(PredictionTask, on_delete=models.PROTECT, related_name="activations")
    action = models.CharField(max_length=16, choices=Action.choices)
    from_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.task_id} at {self.at:%Y-%m-%d %H:%M}"


class AdviceRequest(models.Model):
    """The outbox row: written for each visit event (or an explicit request), relayed to Celery.

    ``event`` is the visit event it consumes: unique, so an event yields one request whoever
    consumes it first (the subscriber in the visit's transaction, or the relay's sweep). Requests
    made through the API, and those from before visit events existed, have none.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DISPATCHED = "dispatched", "Handed to the broker"
        COMPUTING = "computing", "Being computed"  # claimed by one worker process (claimed_by)
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    visit = models.ForeignKey(Visit, on_delete=models.CASCADE, related_name="advice_requests")
    event = models.OneToOneField(
        VisitEvent,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="advice_request",
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    dispatch_attempts = models.PositiveIntegerField(default=0)
    compute_attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)  # a readable reason, never PHI
    request_id = models.CharField(max_length=64, blank=True)
    advice = models.ForeignKey(
        "Advice", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The one worker process computing it ("<AdviceWorker.name>:<pool pid>"): only the claimant
    # may complete it, so a request delivered twice is computed and audited once.
    claimed_by = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Advice request {self.pk} for visit {self.visit_id} ({self.status})"


class AdviceWorker(models.Model):
    """A live advice worker (one row per worker process instance), beating every few seconds.

    The relay presumes a worker lost when its row stops beating: whatever that worker held or may
    have fetched is handed to the broker again (predictions/services/advice_workers.py).
    """

    name = models.CharField(max_length=200, unique=True)  # "<celery node>#<random instance id>"
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"Advice worker {self.name}"


class Advice(models.Model):
    """Advice computed for one visit's inputs by one set of model versions.

    The payload (ranked diagnoses, risks, contributions, alerts, similar cases) quotes the visit's
    findings and words of its free text, so it is encrypted like the free text itself.
    """

    visit = models.ForeignKey(Visit, on_delete=models.CASCADE, related_name="advice")
    input_hash = models.CharField(max_length=64)
    models_key = models.CharField(max_length=200)  # "task:version,..." of the models used
    model_versions = models.ManyToManyField(ModelVersion, related_name="advice", blank=True)
    payload = EncryptedTextField()
    abstained = models.BooleanField(default=False)
    alert_count = models.PositiveSmallIntegerField(default=0)
    critical_alert_count = models.PositiveSmallIntegerField(default=0)
    superseded = models.BooleanField(default=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    compute_ms = models.FloatField(default=0)

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Same inputs + same models = same advice, computed once.
            models.UniqueConstraint(
                fields=["visit", "input_hash", "models_key"], name="advice_once_per_input"
            ),
            models.UniqueConstraint(
                fields=["visit"], condition=Q(superseded=False), name="advice_one_current_per_visit"
            ),
        ]
        verbose_name_plural = "advice"

    def __str__(self) -> str:
        return f"Advice {self.pk} for visit {self.visit_id}"


class Feedback(models.Model):
    class Decision(models.TextChoices):
        ACCEPT = "accept", "Accept"
        OVERRIDE = "override", "Override"

    class Reason(models.TextChoices):
        NONE = "", "—"
        CLINICAL_JUDGEMENT = "clinical_judgement", "Clinical judgement differs"
        MISSING_INFORMATION = "missing_information", "Model lacks information I have"
        IMPLAUSIBLE = "implausible", "Suggestion is implausible"
        ALREADY_EXCLUDED = "already_excluded", "Already excluded by tests"
        OTHER = "other", "Other"

    # Feedback is on a stored advice (the advice panel, the API) or on a CDS Hooks card shown
    # in an EHR (no stored visit): exactly one of the two.
    advice = models.ForeignKey(
        Advice, null=True, blank=True, on_delete=models.CASCADE, related_name="feedback"
    )
    cds_card = models.ForeignKey(
        "CdsCard", null=True, blank=True, on_delete=models.CASCADE, related_name="feedback"
    )
    suggestion = models.CharField(max_length=40)  # the ICD-10 code or risk task slug
    decision = models.CharField(max_length=10, choices=Decision.choices)
    reason = models.CharField(max_length=24, choices=Reason.choices, blank=True)
    comment = EncryptedTextField(blank=True, default="")
    rank = models.PositiveSmallIntegerField(null=True, blank=True)  # 1 = top suggestion
    diagnosis = models.ForeignKey(
        Diagnosis, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(auto_now_add=True)

    objects = EncryptedQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["advice", "suggestion"], name="feedback_once_per_suggestion"
            ),
            models.UniqueConstraint(fields=["cds_card"], name="feedback_once_per_cds_card"),
            models.CheckConstraint(
                condition=Q(advice__isnull=True) ^ Q(cds_card__isnull=True),
                name="feedback_on_advice_or_cds_card",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.decision} {self.suggestion}"


class MonitoringSnapshot(models.Model):
    """One look at an active model version over a recent window (predictions/monitoring.py).

    Figures only, never PHI: per-feature drift with the n behind each figure, output drift, live
    performance against confirmed diagnoses and feedback, and the alerts it raised.
    """

    class Status(models.TextChoices):
        OK = "ok", "OK: behaving as on the day it was promoted"
        WATCH = "watch", "Watch: something moved, look at it"
        ACT = "act", "Act: the model may be unsafe to use as is"

    task = models.ForeignKey(PredictionTask, on_delete=models.CASCADE, related_name="snapshots")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="snapshots")
    computed_at = models.DateTimeField(auto_now_add=True, db_index=True)
    window_days = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OK)
    # {"reference_n", "window_n", "features": {name: {...}}, "psi_max", "status"}
    input_drift = models.JSONField(default=dict, blank=True)
    # {"probabilities": {...}, "top_class": {...}, "served": {...}, "alerts_per_rule": {...}}
    output_drift = models.JSONField(default=dict, blank=True)
    # {"n", "top1", "top3", "roc_auc", "brier" (each with CI), "feedback": {...}}
    performance = models.JSONField(default=dict, blank=True)
    # [{"severity", "message", "source"}]: the reasons behind the status, in plain words.
    alerts = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-computed_at", "-id"]
        indexes = [models.Index(fields=["task", "-computed_at"], name="snapshot_task_latest")]

    def __str__(self) -> str:
        return f"{self.version} {self.status} at {self.computed_at:%Y-%m-%d %H:%M}"


class ModelAlert(models.Model):
    """A monitoring threshold crossed: shown to admins until someone acknowledges it."""

    class Severity(models.TextChoices):
        WATCH = "watch", "Watch"
        ACT = "act", "Act"

    task = models.ForeignKey(PredictionTask, on_delete=models.CASCADE, related_name="alerts")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="alerts")
    snapshot = models.ForeignKey(
        MonitoringSnapshot, on_delete=models.CASCADE, related_name="model_alerts"
    )
    severity = models.CharField(max_length=8, choices=Severity.choices)
    # What crossed the threshold ("input:obs_8310-5", "performance:roc_auc"): an open alert with
    # the same key and severity is not raised again by the next run, so admins see it once.
    key = models.CharField(max_length=80)
    message = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.severity}: {self.message[:60]}"


class ModelUse(models.Model):
    """One use of a model outside any stored visit (the prediction API, CDS Hooks).

    Such a prediction concerns no stored patient, so it is accounted for as model use rather than
    as a PHI read in the audit chain: who (user, API token), which version, a hash of the inputs
    (never the inputs themselves), how many rows, and when.
    """

    class Interface(models.TextChoices):
        API = "api"
        CDS_HOOKS = "cds-hooks"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    api_token = models.ForeignKey(
        "medai_site.ApiToken", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # A CDS Hooks client is an EHR identified by its JWT issuer, not a MedAI user.
    client = models.CharField(max_length=200, blank=True)
    interface = models.CharField(max_length=16, choices=Interface.choices)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="uses")
    input_hash = models.CharField(max_length=64)
    rows = models.PositiveIntegerField(default=1)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.version_id} x{self.rows} at {self.at:%Y-%m-%d %H:%M}"


class CdsCard(models.Model):
    """A CDS Hooks card MedAI returned to an EHR, kept so the EHR's feedback can name it.

    Holds no PHI: the card's uuid, the service, what it suggested (an ICD-10 category, a risk
    task's slug or a rule's name) and the model use that produced it (none for rule-only cards).
    """

    uuid = models.UUIDField(unique=True)
    service = models.CharField(max_length=64)
    suggestion = models.CharField(max_length=40)
    rank = models.PositiveSmallIntegerField(null=True, blank=True)
    model_use = models.ForeignKey(
        ModelUse, null=True, blank=True, on_delete=models.PROTECT, related_name="cards"
    )
    client = models.CharField(max_length=200)  # the EHR's JWT issuer
    issued_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-issued_at", "-id"]

    def __str__(self) -> str:
        return f"{self.service}: {self.suggestion}"


class VisitInputsVersion(models.Model):
    """A number that changes whenever a visit's inputs to a featuriser change: its age, visit
    type, free text, observations, or its patient's sex (or the visit moves to another patient).

    Maintained by PostgreSQL triggers on the visit, observation and patient tables (migration
    ``0012_visit_inputs_version``), not by Python: every write counts, through a service, the
    admin, a bulk import or plain SQL. Each change takes a new value of one sequence, so a value,
    once replaced, never comes back. The feature-row cache keeps, per visit, the version its row
    was computed from; reading 10,000 versions costs a few milliseconds where hashing the
    10,000 visits' inputs cost the database a hundred or more. No foreign key: the visit's
    deletion trigger removes its row. Read only by ``predictions.services.feature_cache``.
    """

    visit_id = models.BigIntegerField(primary_key=True)
    version = models.BigIntegerField()

    def __str__(self) -> str:
        return f"visit {self.visit_id} inputs v{self.version}"


class FeatureRowBlock(models.Model):
    """Cached feature rows of the visits with ids in ``first_visit_id..last_visit_id``, under one
    featuriser (``featuriser_key``).

    The payload is one packed block (``predictions.ml.feature_rows``): per visit its id, a digest
    of its inputs when the row was computed, and the row. Rows reveal clinical values (a visit's
    observations, standardised; the words of its free text), so the payload is encrypted
    (``medai_site.blob_encryption``). A cache: any block may be deleted at any time, and a visit
    whose inputs changed since (another digest) or a new featuriser (another key) is computed
    again. Written only by ``predictions.services.feature_cache``.
    """

    featuriser_key = models.CharField(max_length=64)
    first_visit_id = models.PositiveBigIntegerField()
    last_visit_id = models.PositiveBigIntegerField()
    visits = models.PositiveIntegerField()
    payload = models.BinaryField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["featuriser_key", "first_visit_id"], name="feature_row_block_once"
            )
        ]

    def __str__(self) -> str:
        return f"feature rows {self.first_visit_id}-{self.last_visit_id}"


class ScoringRun(models.Model):
    """One re-scoring of every stored visit with a task's active version, split into chunks of
    visit ids that Celery workers score in parallel (``predictions.services.batch_scoring``)."""

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        DONE = "done", "done"

    task = models.ForeignKey(PredictionTask, on_delete=models.PROTECT, related_name="scoring_runs")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="scoring_runs")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    chunk_visits = models.PositiveIntegerField()
    chunks_total = models.PositiveIntegerField()
    visits_total = models.PositiveIntegerField()
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"scoring run {self.pk} ({self.status})"


class ScoringChunk(models.Model):
    """The scores of one chunk of a run: visit ids and probabilities (columns in the version's
    class order) in one encrypted payload (a visit's risks are clinical data)."""

    run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="chunks")
    first_visit_id = models.PositiveBigIntegerField()
    last_visit_id = models.PositiveBigIntegerField()
    visits = models.PositiveIntegerField()
    cache_hits = models.PositiveIntegerField()
    compute_ms = models.FloatField()
    payload = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "first_visit_id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "first_visit_id"], name="scoring_chunk_once")
        ]

    def __str__(self) -> str:
        return f"run {self.run_id} visits {self.first_visit_id}-{self.last_visit_id}"
