"""Forms for the patient pages. Writes go through ``patients.services``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from medai_site.errors import DomainError, InvalidInput, NotFound, record_after_rollback
from medai_site.roles import is_admin
from medai_site.terminology import term

from .break_glass import MIN_REASON_WORDS, break_glass_open, reason_is_specific
from .models import Allergy, BreakGlassGrant, CareTeam, Patient, normalise_mrn
from .selectors import care_teams_registrable
from .services import AllergyInput, patient_create, registration_care_teams

ALLERGY_ROWS = 3


class PatientSearchForm(forms.Form):
    q = forms.CharField(
        label=_("Name, MRN, phone or national ID"),
        max_length=100,
        required=False,
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off", "autofocus": True}),
    )


def form_errors_from(form: forms.Form, exc: DomainError, *, aliases: dict[str, str]) -> None:
    """Put a service's field errors next to the form's fields (unknown ones at the top), and
    write what the error asked to be recorded (e.g. a denied MRN probe)."""
    record_after_rollback(exc)
    placed = False
    for name, messages in exc.fields.items():
        target = aliases.get(name, name)
        if target in form.fields:
            for message in messages:
                form.add_error(target, message)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


class PatientRegisterForm(forms.Form):
    mrn = forms.CharField(
        label=_("MRN"),
        max_length=32,
        help_text=_("4–32 capital letters, digits or hyphens."),
    )
    given_name = forms.CharField(label=_("Given name"), max_length=100)
    family_name = forms.CharField(label=_("Family name"), max_length=100)
    sex = forms.ChoiceField(
        label=_("Sex"),
        choices=[
            ("", "—"),
            ("female", _("Female")),
            ("male", _("Male")),
            ("other", _("Other")),
            ("unknown", _("Unknown")),
        ],
    )
    birth_date = forms.DateField(
        label=_("Date of birth"),
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        input_formats=["%Y-%m-%d"],
    )
    phone = forms.CharField(label=_("Phone"), max_length=40, required=False)
    email = forms.EmailField(label=_("E-mail"), required=False)
    national_id = forms.CharField(label=_("National ID"), max_length=40, required=False)
    address = forms.CharField(
        label=_("Address"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    emergency_contact = forms.CharField(
        label=_("Emergency contact"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    care_teams = forms.ModelMultipleChoiceField(
        label=_("Care teams"),
        queryset=CareTeam.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The doctors of these teams will see the patient."),
    )

    def __init__(self, *args: Any, user: object, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        # The registration rule (patients.services.registration_care_teams) offers the choices.
        teams = care_teams_registrable(viewer=user)
        self.fields["care_teams"].queryset = teams
        # Team names are terminology: shown in the UI language (medai_site/terminology).
        self.fields["care_teams"].label_from_instance = lambda team: term(  # type: ignore[attr-defined]
            "care_team", team.name, team.name
        )
        if not self.is_bound and not is_admin(user):
            self.initial.setdefault("care_teams", list(teams))
        severities = [
            (Allergy.Severity.MILD, _("Mild")),
            (Allergy.Severity.MODERATE, _("Moderate")),
            (Allergy.Severity.SEVERE, _("Severe")),
        ]
        for i in range(ALLERGY_ROWS):
            self.fields[f"allergy_{i}_substance"] = forms.CharField(
                label=_("Substance"), max_length=100, required=False
            )
            self.fields[f"allergy_{i}_reaction"] = forms.CharField(
                label=_("Reaction"), max_length=200, required=False
            )
            self.fields[f"allergy_{i}_severity"] = forms.ChoiceField(
                label=_("Severity"),
                choices=severities,
                initial=Allergy.Severity.MODERATE,
                required=False,
            )

    @property
    def allergy_rows(self) -> list[tuple[forms.BoundField, forms.BoundField, forms.BoundField]]:
        return [
            (
                self[f"allergy_{i}_substance"],
                self[f"allergy_{i}_reaction"],
                self[f"allergy_{i}_severity"],
            )
            for i in range(ALLERGY_ROWS)
        ]

    def clean_mrn(self) -> str:
        return normalise_mrn(self.cleaned_data["mrn"])

    def clean_care_teams(self) -> list[CareTeam]:
        chosen = self.cleaned_data["care_teams"]
        try:
            return registration_care_teams(actor=self.user, team_ids=[t.pk for t in chosen])
        except InvalidInput as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_birth_date(self) -> dt.date:
        born = self.cleaned_data["birth_date"]
        if born > dt.date.today():  # noqa: DTZ011 (a calendar date, compared with one)
            raise forms.ValidationError(_("Date of birth is in the future."))
        return born

    def save(self) -> Patient | None:
        """Register through ``patient_create``; on a domain error, errors land on fields."""
        data = self.cleaned_data
        allergies = [
            AllergyInput(
                substance=data[f"allergy_{i}_substance"],
                reaction=data[f"allergy_{i}_reaction"],
                severity=data[f"allergy_{i}_severity"] or Allergy.Severity.MODERATE,
            )
            for i in range(ALLERGY_ROWS)
            if data.get(f"allergy_{i}_substance", "").strip()
        ]
        try:
            return patient_create(
                mrn=data["mrn"],
                sex=data["sex"],
                given_name=data["given_name"],
                family_name=data["family_name"],
                birth_date=data["birth_date"],
                phone=data["phone"],
                email=data["email"],
                address=data["address"],
                national_id=data["national_id"],
                emergency_contact=data["emergency_contact"],
                care_teams=data["care_teams"],
                allergies=allergies,
                actor=self.user,
            )
        except DomainError as exc:
            form_errors_from(self, exc, aliases={"substance": "allergy_0_substance"})
            return None


class BreakGlassForm(forms.Form):
    """Emergency access to a patient outside the doctor's care teams (``break_glass_open``)."""

    mrn = forms.CharField(
        label=_("MRN"),
        max_length=32,
        help_text=_("The patient's medical record number, exactly."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "characters"}),
    )
    category = forms.ChoiceField(
        label=_("Kind of emergency"),
        choices=[("", "—"), *BreakGlassGrant.Category.choices],
    )
    reason = forms.CharField(
        label=_("Describe the emergency"),
        max_length=1000,
        help_text=_(
            "In your own words: what is happening, and why can the care team not be reached?"
        ),
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"]
        if not reason_is_specific(reason):  # the service's own rule, reported on the field
            raise forms.ValidationError(
                _(
                    "Describe the emergency in your own words (at least %(words)d different "
                    "words); it is reviewed."
                )
                % {"words": MIN_REASON_WORDS}
            )
        return reason

    def __init__(self, *args: Any, user: object, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def save(self) -> BreakGlassGrant | None:
        """Open the grant; an unknown MRN or a refused reason lands on its field."""
        try:
            return break_glass_open(
                viewer=self.user,
                mrn=self.cleaned_data["mrn"],
                category=self.cleaned_data["category"],
                reason=self.cleaned_data["reason"],
            )
        except NotFound:
            self.add_error("mrn", _("No patient has this MRN."))
        except DomainError as exc:
            form_errors_from(self, exc, aliases={})
        return None
