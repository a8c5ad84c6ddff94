"""Forms for the advice panel and the model pages."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import Feedback

OVERRIDE_REASONS = [
    (Feedback.Reason.CLINICAL_JUDGEMENT, _("Clinical judgement differs")),
    (Feedback.Reason.MISSING_INFORMATION, _("Model lacks information I have")),
    (Feedback.Reason.IMPLAUSIBLE, _("Suggestion is implausible")),
    (Feedback.Reason.ALREADY_EXCLUDED, _("Already excluded by tests")),
    (Feedback.Reason.OTHER, _("Other")),
]


class FeedbackForm(forms.Form):
    """One click per suggestion: the decision is the button pressed, the reason a select."""

    advice = forms.IntegerField(widget=forms.HiddenInput)
    suggestion = forms.CharField(max_length=40, widget=forms.HiddenInput)
    decision = forms.ChoiceField(choices=Feedback.Decision.choices)
    reason = forms.ChoiceField(
        label=_("Reason"),
        choices=OVERRIDE_REASONS,
        required=False,
        initial=Feedback.Reason.CLINICAL_JUDGEMENT,
    )

    def clean(self) -> dict[str, object]:
        data = super().clean()
        if data.get("decision") == Feedback.Decision.ACCEPT:
            data["reason"] = ""  # the reason select belongs to "override"
        elif data.get("decision") == Feedback.Decision.OVERRIDE and not data.get("reason"):
            self.add_error("reason", _("Say why you override the suggestion."))
        return data
