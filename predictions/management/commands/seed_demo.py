"""Demo users, care teams and a synthetic population (deterministic with --seed)."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction

from medai_site import roles
from medai_site.management.commands.totp_enroll import enrolment_text
from medai_site.two_factor import confirmed_device, totp_device_create
from patients.models import CareTeam, Patient
from patients.services import care_team_create
from visits.demo import generate_population
from visits.demo_import import population_import

# Demo logins for the embedded default only; `make run` prints them. Never used in production:
# the command refuses to run under MEDAI_PROFILE=production without --allow-production.
DEMO_PASSWORD = "medai-demo-2026"  # noqa: S105
DEMO_USERS = (
    ("dr.chen", "Wei", "Chen", roles.DOCTOR, "Internal Medicine"),
    ("dr.okafor", "Ada", "Okafor", roles.DOCTOR, "Emergency Department"),
    ("admin", "Hospital", "Admin", roles.ADMIN, None),
)


class Command(BaseCommand):
    help = "Create demo users, care teams and a synthetic patient population."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--visits", type=int, default=3000)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument(
            "--longitudinal",
            type=int,
            default=300,
            help="patients followed over years (chronic disease progression) for the forecasts",
        )
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if patients exist.")
        parser.add_argument("--allow-production", action="store_true")
        parser.add_argument(
            "--train",
            action="store_true",
            help="Queue a training job per prediction task, so the demo's advice has models.",
        )

    def handle(
        self,
        *args: Any,
        visits: int,
        seed: int,
        if_empty: bool,
        allow_production: bool,
        **opts: Any,
    ) -> None:
        from django.conf import settings

        if settings.PROFILE == "production" and not allow_production:
            self.stderr.write("Refusing to load demo data into a production profile.")
            return
        if if_empty and Patient.objects.exists():
            self.stdout.write("Demo data already present.")
        else:
            started = time.perf_counter()
            with transaction.atomic():
                teams, attendings = self._users_and_teams()
                population = generate_population(
                    n_visits=visits, seed=seed, longitudinal_patients=opts.get("longitudinal", 0)
                )
                report = population_import(
                    population=population, teams=teams, attendings=attendings
                )
            self.stdout.write(
                f"Loaded {report.patients} patients, {report.visits} visits, {report.observations} "
                f"observations, {report.diagnoses} diagnoses in {time.perf_counter() - started:.1f} s."
            )
            if opts.get("train"):
                self._queue_training()
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for username, _, _, role, team in DEMO_USERS:
            self.stdout.write(f"  {username:<10} {role}{f' — care team {team}' if team else ''}")
        admin = User.objects.get(username="admin")
        device = confirmed_device(admin) or totp_device_create(
            user=admin, confirmed=True, replace=True
        )
        self.stdout.write("The admin site also asks for a one-time code (two-factor):")
        self.stdout.write("  " + enrolment_text(device))

    def _queue_training(self) -> None:
        from predictions.models import TrainingJob
        from predictions.services.training import training_nightly_start

        training_nightly_start(actor=None, trigger=TrainingJob.Trigger.SYSTEM)
        self.stdout.write(
            "Training jobs queued for every prediction task: the worker trains the first models in "
            "a few minutes (watch them under Models); until then advice has the rules only."
        )

    def _users_and_teams(self) -> tuple[list[CareTeam], list[User]]:
        teams, attendings = [], []
        for username, first, last, role, team_name in DEMO_USERS:
            user, created = User.objects.get_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "is_staff": role == roles.ADMIN,
                    "is_superuser": role == roles.ADMIN,
                },
            )
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            user.groups.add(Group.objects.get(name=role))
            if team_name:
                team = CareTeam.objects.filter(name=team_name).first() or care_team_create(
                    name=team_name, members=[user], actor=None
                )
                teams.append(team)
                attendings.append(user)
        return teams, attendings
