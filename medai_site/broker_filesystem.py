"""kombu's filesystem transport (the embedded broker of ``make run``) with whole messages only.

kombu 5's ``filesystem`` transport creates a message file under its final name and then writes
into it; a worker polling the folder can move and read that file before the write finished, get
an empty or cut JSON document and die ("Unrecoverable error: JSONDecodeError"), taking advice
down until someone restarts it. Here a message is written under a name no consumer takes
(``….msg.part``: the consumer matches ``<queue>.msg`` exactly after the first dot) and renamed
to its final name when complete; a rename within one directory is atomic, so a consumer sees
either no message or all of it. Everything else is kombu's.

:func:`register` makes every ``filesystem://`` URL use it (web, workers, relay, beat alike): the
Celery app calls it before it connects.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

PARTIAL_SUFFIX = ".part"


class Channel(filesystem.Channel):  # type: ignore[misc]  # kombu has no type hints
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        """Put ``payload`` onto ``queue``: kombu's file name and content, written in full first."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):  # type: ignore[misc]
    Channel = Channel


def register() -> None:
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
