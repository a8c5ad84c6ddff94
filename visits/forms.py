"""The visit form: vitals and labs with units and ranges, free text, a provisional diagnosis.

Validation runs every entered value through ``visits.services.observation_validate`` (the same
check the services apply), so an impossible value is reported next to its field before anything
is written, together with every other error, and the form keeps all the input.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from medai_site.errors import DomainError, InvalidInput
from medai_site.templatetags.medai import unit_display
from patients.forms import form_errors_from
from patients.models import Patient

from .catalogue import LAB_READING_ORDER, VITAL_READING_ORDER
from .icd10 import icd10_lookup, normalise_code
from .models import ObservationDefinition, Visit
from .services import (
    VISIT_TEXT_LIMITS,
    DiagnosisInput,
    ObservationInput,
    observation_validate,
    triage_vitals_missing,
    visit_record,
)
from .units import CONVERSIONS, to_canonical, value_text

TEXT_FIELDS = (
    "chief_complaint",
    "history_present_illness",
    "past_history",
    "physical_exam",
    "plan",
    "medications",
)


def field_name(code: str) -> str:
    return "obs_" + code.replace("-", "_")


def unit_field_name(code: str) -> str:
    return "unit_" + code.replace("-", "_")


def range_text(low: float | None, high: float | None, decimals: int) -> str:
    if low is None and high is None:
        return ""
    if low is None:
        return f"≤ {value_text(high, decimals)}"
    if high is None:
        return f"≥ {value_text(low, decimals)}"
    return f"{value_text(low, decimals)}–{value_text(high, decimals)}"


def normal_ranges(d: ObservationDefinition) -> dict[str, str]:
    """The normal range in each unit the value may be entered in, e.g. glucose in mg/dL and
    mmol/L, so the range shown follows the unit the doctor picks."""
    ranges = {}
    for unit in [d.unit, *d.alternative_units]:
        low, high, decimals = d.normal_low, d.normal_high, d.decimals
        if unit != d.unit:
            conversion = CONVERSIONS.get((d.code, unit))
            if conversion is None:
                continue
            low = None if low is None else conversion.from_canonical(low)
            high = None if high is None else conversion.from_canonical(high)
            decimals = conversion.decimals
        text = range_text(low, high, decimals)
        ranges[unit] = f"{text} {unit_display(unit)}" if text else ""
    return ranges


@dataclass
class ObservationRow:
    definition: ObservationDefinition
    value: forms.BoundField
    unit: forms.BoundField | None
    normal: str
    plausible: str
    # unit -> "low–high unit"; ``normal_text`` is the one for the unit selected now.
    ranges: dict[str, str] = field(default_factory=dict)
    normal_text: str = ""

    @property
    def unit_label(self) -> str:
        return unit_display(self.definition.unit)

    @property
    def ranges_json(self) -> str:
        return json.dumps(self.ranges, ensure_ascii=False)


class VisitForm(forms.Form):
    visit_type = forms.ChoiceField(
        label=_("Visit type"),
        choices=[
            (Visit.Type.OUTPATIENT, _("Outpatient")),
            (Visit.Type.EMERGENCY, _("Emergency")),
            (Visit.Type.INPATIENT, _("Inpatient")),
            (Visit.Type.TELEMEDICINE, _("Telemedicine")),
        ],
        help_text=_(
            "An emergency visit needs its triage vital signs: respiratory rate, oxygen "
            "saturation, systolic blood pressure, heart rate and temperature."
        ),
    )
    chief_complaint = forms.CharField(
        label=_("Chief complaint"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    history_present_illness = forms.CharField(
        label=_("History of present illness"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    past_history = forms.CharField(
        label=_("Past history"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    physical_exam = forms.CharField(
        label=_("Physical examination"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    plan = forms.CharField(
        label=_("Plan"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    medications = forms.CharField(
        label=_("Medications"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    diagnosis_code = forms.CharField(
        label=_("Provisional diagnosis (ICD-10)"),
        required=False,
        max_length=300,
        help_text=_("Type a code or words, then choose from the list."),
    )

    def __init__(
        self,
        *args: Any,
        definitions: list[ObservationDefinition],
        user: object,
        visit: Visit | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        for name in TEXT_FIELDS:
            self.fields[name].help_text = _("At most %(limit)s characters.") % {
                "limit": VISIT_TEXT_LIMITS[name]
            }
        self.fields["medications"].help_text = _(
            "One medicine per line: name, dose, how often (checked against the allergies on "
            "save). At most %(limit)s characters."
        ) % {"limit": VISIT_TEXT_LIMITS["medications"]}
        self.user = user
        self.visit = visit
        # Clinical reading order (the chart's), then anything else the catalogue holds.
        order = {code: i for i, code in enumerate((*VITAL_READING_ORDER, *LAB_READING_ORDER))}
        definitions = sorted(definitions, key=lambda d: (order.get(d.code, len(order)), d.code))
        self.definitions = {d.code: d for d in definitions}
        for d in definitions:
            self.fields[field_name(d.code)] = forms.CharField(
                label=_(d.display),
                required=False,
                max_length=20,
                widget=forms.TextInput(
                    attrs={"inputmode": "decimal", "autocomplete": "off", "class": "num"}
                ),
            )
            if d.alternative_units:
                self.fields[unit_field_name(d.code)] = forms.ChoiceField(
                    label=_("Unit of %(name)s") % {"name": _(d.display)},
                    choices=[(u, unit_display(u)) for u in [d.unit, *d.alternative_units]],
                    initial=d.unit,
                )
        if visit is not None and not self.is_bound:
            self.initial.update(
                {"visit_type": visit.visit_type, **{n: getattr(visit, n) for n in TEXT_FIELDS}}
            )
            for obs in visit.observations.all():
                code = obs.definition.code
                self.initial[field_name(code)] = f"{obs.entered_value:g}"
                if (d := self.definitions.get(code)) and d.alternative_units:
                    self.initial[unit_field_name(code)] = obs.entered_unit

    def _rows(self, category: str) -> list[ObservationRow]:
        rows = []
        for d in self.definitions.values():
            if d.category != category:
                continue
            unit = self[unit_field_name(d.code)] if d.alternative_units else None
            ranges = normal_ranges(d)
            selected = str(unit.value() or d.unit) if unit is not None else d.unit
            rows.append(
                ObservationRow(
                    definition=d,
                    value=self[field_name(d.code)],
                    unit=unit,
                    normal=range_text(d.normal_low, d.normal_high, d.decimals),
                    plausible=range_text(d.plausible_low, d.plausible_high, d.decimals),
                    ranges=ranges,
                    normal_text=ranges.get(selected, ranges.get(d.unit, "")),
                )
            )
        return rows

    @property
    def vital_rows(self) -> list[ObservationRow]:
        return self._rows(ObservationDefinition.Category.VITAL)

    @property
    def lab_rows(self) -> list[ObservationRow]:
        return self._rows(ObservationDefinition.Category.LAB)

    def clean_diagnosis_code(self) -> str:
        text = self.cleaned_data["diagnosis_code"].strip()
        if not text:
            return ""
        code = normalise_code(text.split()[0])
        try:
            code, _display = icd10_lookup(code)
        except InvalidInput:
            raise forms.ValidationError(
                _("“%(code)s” is not a valid ICD-10 code."), params={"code": text[:20]}
            ) from None
        return code

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        self.observations: list[ObservationInput] = []
        for code, d in self.definitions.items():
            raw = (data.get(field_name(code)) or "").strip()
            if not raw:
                continue
            unit = data.get(unit_field_name(code), d.unit) if d.alternative_units else d.unit
            entry = ObservationInput(code=code, value=raw, unit=unit)
            try:
                observation_validate(entry, d)
            except InvalidInput:
                self.add_error(field_name(code), self._observation_message(d, raw, unit))
                continue
            self.observations.append(entry)
        self._check_text_lengths(data)
        self._check_triage(data)
        return data

    def _check_text_lengths(self, data: dict[str, Any]) -> None:
        """The services' one limit per field (VISIT_TEXT_LIMITS), said in the reader's language."""
        for name in TEXT_FIELDS:
            value = data.get(name) or ""
            limit = VISIT_TEXT_LIMITS[name]
            if len(value) > limit:
                self.add_error(
                    name,
                    _("Too long: %(length)s characters, at most %(limit)s.")
                    % {"length": len(value), "limit": limit},
                )

    def _check_triage(self, data: dict[str, Any]) -> None:
        """A visit that becomes an emergency one asks for its triage vital signs."""
        if data.get("visit_type") != Visit.Type.EMERGENCY:
            return
        if self.visit is not None and self.visit.visit_type == Visit.Type.EMERGENCY:
            return
        recorded = [o.code for o in self.observations]
        if self.visit is not None:
            recorded += [o.definition.code for o in self.visit.observations.all()]
        for code in triage_vitals_missing(recorded):
            if code in self.definitions and not self.has_error(field_name(code)):
                self.add_error(field_name(code), _("Needed at triage for an emergency visit."))

    @staticmethod
    def _observation_message(d: ObservationDefinition, raw: str, unit: str) -> str:
        """The service rejected the value: say why in the reader's language."""
        try:
            entered = float(raw.replace(",", "."))
        except ValueError:
            return str(_("Enter a number."))
        if not math.isfinite(entered):
            return str(_("Enter a number."))
        try:
            to_canonical(d.code, entered, unit, d.unit)
        except InvalidInput:
            return str(_("This unit cannot be used here; use %(unit)s.")) % {
                "unit": unit_display(d.unit)
            }
        return str(
            _(
                "%(value)s %(unit)s is outside the possible range %(range)s %(canonical)s; "
                "check the value and unit."
            )
        ) % {
            "value": raw,
            "unit": unit_display(unit),
            "range": range_text(d.plausible_low, d.plausible_high, d.decimals),
            "canonical": unit_display(d.unit),
        }

    def save(self, *, patient: Patient | None = None) -> Visit | None:
        """Create (``patient``) or update (``self.visit``) the visit; None if a service refused."""
        data = self.cleaned_data
        texts = {name: data[name] for name in TEXT_FIELDS}
        aliases = {
            **{code: field_name(code) for code in self.definitions},
            "code": "diagnosis_code",
            "rank": "diagnosis_code",
        }
        code = data.get("diagnosis_code")
        try:
            visit = visit_record(
                actor=self.user,
                patient=patient if self.visit is None else None,
                visit=self.visit,
                observations=self.observations,
                # No rank: primary, or secondary when the visit already has a standing primary.
                diagnoses=[DiagnosisInput(code=code)] if code else [],
                visit_type=data["visit_type"],
                **texts,
            )
        except DomainError as exc:
            form_errors_from(self, exc, aliases=aliases)
            return None
        return visit
