"""The registry: promotion only when not worse, admin promote/rollback with reasons, kill switch."""

from __future__ import annotations

import pytest

from medai_site.errors import Conflict, InvalidInput
from predictions.models import ActivationEvent, ModelVersion, PredictionTask
from predictions.promotion import compare
from predictions.services.registry import task_set_enabled, version_promote, version_rollback

from .conftest import train

pytestmark = pytest.mark.django_db

CHAMPION = {"roc_auc": 0.80, "ece": 0.05, "brier": 0.2, "accuracy": 0.7}


# --- compare(): the decision on the same held-out data ----------------------------------------------


def test_compare_promotes_the_first_version_of_a_task():
    result = compare({"roc_auc": 0.6, "ece": 0.3}, None)
    assert result["promote"] is True
    assert "first version" in result["reasons"][0]


def test_compare_promotes_a_challenger_within_the_margins(settings):
    settings.MEDAI_PROMOTION_AUC_MARGIN = 0.01
    settings.MEDAI_PROMOTION_ECE_MARGIN = 0.02
    result = compare({"roc_auc": 0.795, "ece": 0.065}, CHAMPION)
    assert result["promote"] is True
    assert result["champion"]["roc_auc"] == 0.80
    assert result["challenger"]["ece"] == 0.065


@pytest.mark.parametrize(
    ("challenger", "words"),
    [
        (
            {"roc_auc": 0.78, "ece": 0.05},
            "ROC AUC 0.780 is more than 0.01 below the active model's 0.800",
        ),
        (
            {"roc_auc": 0.85, "ece": 0.08},
            "Calibration error 0.080 is more than 0.02 above the active model's 0.050",
        ),
        ({"roc_auc": None, "ece": 0.01}, "ROC AUC n/a"),
    ],
)
def test_compare_keeps_a_worse_challenger_as_candidate_and_says_why(settings, challenger, words):
    settings.MEDAI_PROMOTION_AUC_MARGIN = 0.01
    settings.MEDAI_PROMOTION_ECE_MARGIN = 0.02
    result = compare(challenger, CHAMPION)
    assert result["promote"] is False
    assert any(words in reason for reason in result["reasons"])


# --- automatic promotion after training -------------------------------------------------------------


def test_first_trained_version_becomes_active_with_an_activation_event(population, admin_user):
    job = train("differential", actor=admin_user)
    version = job.model_version
    task = PredictionTask.objects.get(slug="differential")
    assert task.active_version == version
    event = ActivationEvent.objects.get(task=task)
    assert (event.action, event.from_version, event.to_version, event.actor) == (
        ActivationEvent.Action.AUTO_PROMOTE,
        None,
        version,
        admin_user,
    )
    assert "first version" in event.reason
    assert version.comparison["promote"] is True


def test_a_challenger_not_worse_on_the_same_holdout_replaces_the_champion(population):
    first = train("differential").model_version
    second = train("differential").model_version  # same data, same seed: equal metrics
    assert second.comparison["promote"] is True
    assert second.comparison["champion"]["roc_auc"] == pytest.approx(
        second.comparison["challenger"]["roc_auc"]
    )
    assert PredictionTask.objects.get(slug="differential").active_version == second
    event = ActivationEvent.objects.filter(to_version=second).get()
    assert (event.action, event.from_version) == (ActivationEvent.Action.AUTO_PROMOTE, first)


def test_a_worse_challenger_waits_as_candidate_with_the_comparison_shown(population, settings):
    first = train("differential").model_version
    # A negative margin demands a challenger better by 0.5 AUC than the champion: it cannot be.
    settings.MEDAI_PROMOTION_AUC_MARGIN = -0.5
    second = train("differential").model_version
    assert second.comparison["promote"] is False
    assert second.comparison["holdout_visits"] == first.comparison["holdout_visits"]
    assert any("below the active model" in r for r in second.comparison["reasons"])
    assert PredictionTask.objects.get(slug="differential").active_version == first
    assert not ActivationEvent.objects.filter(to_version=second).exists()


# --- admin promotion, rollback and the kill switch -----------------------------------------------


@pytest.fixture
def two_versions(population, settings):
    first = train("differential").model_version
    settings.MEDAI_PROMOTION_AUC_MARGIN = -0.5
    candidate = train("differential").model_version
    return first, candidate


def test_promote_and_rollback_record_who_why_and_from_which_version(two_versions, admin_user):
    first, candidate = two_versions
    promoted = version_promote(
        version=candidate, reason="  validated on ward data  ", actor=admin_user
    )
    assert (promoted.action, promoted.from_version, promoted.to_version) == (
        ActivationEvent.Action.PROMOTE,
        first,
        candidate,
    )
    assert (promoted.actor, promoted.reason) == (admin_user, "validated on ward data")

    task = PredictionTask.objects.get(slug="differential")
    rolled = version_rollback(task=task, reason="alert fatigue reported", actor=admin_user)
    assert (rolled.action, rolled.from_version, rolled.to_version) == (
        ActivationEvent.Action.ROLLBACK,
        candidate,
        first,
    )
    task.refresh_from_db()
    assert task.active_version == first
    history = list(task.activations.order_by("at", "id").values_list("action", flat=True))
    assert history == ["auto_promote", "promote", "rollback"]
    assert ModelVersion.objects.filter(task=task).count() == 2  # nothing deleted


def test_promote_and_rollback_require_a_reason(two_versions, admin_user):
    first, candidate = two_versions
    with pytest.raises(InvalidInput, match="reason is required"):
        version_promote(version=candidate, reason="  ", actor=admin_user)
    task = PredictionTask.objects.get(slug="differential")
    assert task.active_version == first
    with pytest.raises(Conflict, match="already active"):
        version_promote(version=first, reason="again", actor=admin_user)
    with pytest.raises(Conflict, match="no earlier version"):
        version_rollback(task=task, reason="nothing to go back to", actor=admin_user)


def test_kill_switch_disables_a_task_without_deleting_versions_and_is_recorded(
    population, admin_user
):
    version = train("differential").model_version
    task = PredictionTask.objects.get(slug="differential")
    with pytest.raises(InvalidInput, match="reason is required"):
        task_set_enabled(task=task, enabled=False, reason="", actor=admin_user)

    event = task_set_enabled(task=task, enabled=False, reason="drift on ward 3", actor=admin_user)
    task.refresh_from_db()
    assert (task.enabled, task.disabled_reason, task.active_version) == (
        False,
        "drift on ward 3",
        version,
    )
    assert (event.action, event.actor, event.to_version) == ("disable", admin_user, version)
    assert ModelVersion.objects.filter(pk=version.pk).exists()
    with pytest.raises(Conflict, match="already disabled"):
        task_set_enabled(task=task, enabled=False, reason="again", actor=admin_user)

    task_set_enabled(task=task, enabled=True, reason="retrained and checked", actor=admin_user)
    task.refresh_from_db()
    assert (task.enabled, task.disabled_reason) == (True, "")


def test_rollback_still_works_after_the_kill_switch(two_versions, admin_user):
    """Kill-switch events name the active version on both sides; rollback must look past them."""
    first, candidate = two_versions
    version_promote(version=candidate, reason="validated", actor=admin_user)
    task = candidate.task
    task_set_enabled(task=task, enabled=False, reason="drift alert", actor=admin_user)
    task_set_enabled(task=task, enabled=True, reason="checked", actor=admin_user)
    event = version_rollback(task=task, reason="back to the known one", actor=admin_user)
    assert (event.from_version, event.to_version) == (candidate, first)


def test_an_unusable_champion_keeps_the_challenger_a_candidate():
    """Without a comparison promotion is an admin's decision, with the reason shown."""
    result = compare(
        {"roc_auc": 0.9, "ece": 0.02}, None, champion_unusable="ArtifactIntegrityError"
    )
    assert result["promote"] is False
    assert "could not be scored" in result["reasons"][0]
