"""``manage.py hl7_listener``: the MLLP listener laboratories send HL7 v2 results to.

One process (Procfile ``hl7``, docker-compose service ``hl7``). Each connection may send many
MLLP-framed messages (0x0B ... 0x1C 0x0D); each is answered with its ACK on the same connection
before the next is read. Messages are processed one at a time in a worker thread (the database is
synchronous); the raw message never reaches a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from predictions.interop.hl7_in import MAX_MESSAGE_BYTES, MLLP_END, MLLP_START, hl7_receive

logger = logging.getLogger(__name__)


def _receive(raw: bytes, actor: Any) -> bytes:
    close_old_connections()
    result = hl7_receive(raw=raw, actor=actor)
    logger.info("HL7 message answered %s (stored %s)", result.code, result.stored)
    return MLLP_START + result.ack.encode("utf-8") + MLLP_END


async def handle_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, actor: Any
) -> None:
    try:
        while True:
            try:
                await reader.readuntil(MLLP_START)
                frame = await reader.readuntil(MLLP_END)
            except asyncio.LimitOverrunError:
                logger.warning("HL7 frame larger than the limit: connection closed")
                break
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            answer = await sync_to_async(_receive, thread_sensitive=True)(
                frame[: -len(MLLP_END)], actor
            )
            writer.write(answer)
            await writer.drain()
    finally:
        writer.close()


async def serve(host: str, port: int, actor: Any, ready: Any = None) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle_connection(r, w, actor), host, port, limit=MAX_MESSAGE_BYTES + 16
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    logger.info("HL7 MLLP listener on port %s", port)
    if ready is not None:
        ready(server.sockets[0].getsockname()[1])
    async with server:
        await stop.wait()


class Command(BaseCommand):
    help = "Listen for HL7 v2 ORU^R01 messages over MLLP and answer each with an ACK."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("MEDAI_HL7_HOST", "127.0.0.1"))
        parser.add_argument(
            "--port", type=int, default=int(os.environ.get("MEDAI_HL7_PORT", "2575"))
        )
        parser.add_argument(
            "--as",
            dest="username",
            default=os.environ.get("MEDAI_HL7_USER", ""),
            help="the integration account results are received as (default: the system)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        actor = None
        if opts["username"]:
            actor = (
                get_user_model().objects.filter(username=opts["username"], is_active=True).first()
            )
            if actor is None:
                raise CommandError(f"No active user named {opts['username']!r}.")
        asyncio.run(serve(opts["host"], opts["port"], actor))
