"""Dead letters: messages the ledger cannot read, kept whole with where they came from and why."""

from __future__ import annotations

from service.config import DEAD_LETTER_TOPIC
from service.kafka import Message, Outgoing

MAX_DETAIL_BYTES = 2000


def dead_letter(message: Message, reason: str, detail: str) -> Outgoing:
    """The dead letter of `message`: its original key, bytes and headers, plus error headers."""
    headers = (
        *message.headers,
        ("dead_letter.reason", reason.encode()),
        ("dead_letter.error", detail.encode()[:MAX_DETAIL_BYTES]),
        ("dead_letter.source_topic", message.topic.encode()),
        ("dead_letter.source_partition", str(message.partition).encode()),
        ("dead_letter.source_offset", str(message.offset).encode()),
    )
    return Outgoing(DEAD_LETTER_TOPIC, message.key, message.value or b"", headers)
