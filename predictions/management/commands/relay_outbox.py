"""Run the advice outbox relay in a loop (its own process: it must work while the broker is down)."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from predictions.broker import broker_instance_id
from predictions.services.outbox import advice_requests_relay, advice_requests_resend_in_flight

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Turn visit events into advice requests and hand them to the broker, retrying while it is away."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between rounds.")
        parser.add_argument("--once", action="store_true", help="One round, then exit.")

    def handle(self, *args: Any, interval: float, once: bool, **options: Any) -> None:
        # The Redis instance the in-flight requests were last sent to. When it changes (Redis
        # restarted: its append-only file may miss the last second) and when the relay starts
        # (it cannot know what happened while it was away), every dispatched request is re-sent;
        # a live worker skips the ones already claimed or done.
        sent_to: str | None = None
        while True:
            close_old_connections()
            try:
                instance = broker_instance_id()
                if (
                    instance is not None
                    and instance != sent_to
                    and advice_requests_resend_in_flight() is not None
                ):
                    sent_to = instance
                sent = advice_requests_relay()
                if sent:
                    logger.info("relay dispatched %d advice request(s)", sent)
            except Exception:
                logger.exception("relay round failed; retrying")
            if once:
                return
            time.sleep(interval)
