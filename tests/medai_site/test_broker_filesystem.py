"""make run's embedded broker hands a worker whole messages only (medai_site/broker_filesystem.py)."""

from __future__ import annotations

import pytest
from kombu import Connection
from kombu.transport import filesystem

from medai_site import broker_filesystem

QUEUE = "advice"


@pytest.fixture
def channel(tmp_path):
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path)}
    connection = Connection("filesystem://", transport_options=options)
    yield connection.default_channel
    connection.release()


def test_filesystem_urls_use_the_whole_message_transport(channel) -> None:
    # medai_site.celery registered it when Django loaded the Celery app.
    assert isinstance(channel, broker_filesystem.Channel)


def test_a_message_is_invisible_to_consumers_until_written_whole(channel, tmp_path, monkeypatch):
    """While the producer writes, a consumer polling the folder finds nothing (kombu's own
    transport already showed it the file under its final name: a worker read it half-written)."""
    seen_while_writing: list[object] = []
    real_dumps = broker_filesystem.dumps

    def dumps_and_poll(payload):
        try:
            seen_while_writing.append(channel._get(QUEUE))
        except filesystem.Empty:
            seen_while_writing.append(None)
        return real_dumps(payload)

    monkeypatch.setattr(broker_filesystem, "dumps", dumps_and_poll)
    channel._put(QUEUE, {"body": "x" * 10_000})
    assert seen_while_writing == [None]
    assert [p.name.endswith(".advice.msg") for p in tmp_path.iterdir()] == [True]  # no .part left
    assert channel._get(QUEUE) == {"body": "x" * 10_000}


def test_a_partial_file_is_never_consumed(channel, tmp_path) -> None:
    (tmp_path / f"1_abc.{QUEUE}.msg{broker_filesystem.PARTIAL_SUFFIX}").write_bytes(b'{"bo')
    with pytest.raises(filesystem.Empty):
        channel._get(QUEUE)
