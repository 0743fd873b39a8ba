"""Dead letters: messages the ledger cannot read, kept whole with where they came from and why."""

from __future__ import annotations

import structlog

from service.config import DEAD_LETTER_TOPIC
from service.kafka import Headers, Message, Outgoing

logger = structlog.get_logger(__name__)
MAX_DETAIL_BYTES = 2000


def dead_letter(
    message: Message, reason: str, detail: str, extra_headers: Headers = ()
) -> Outgoing:
    """The dead letter of `message`: its original key, bytes and headers, plus error headers.

    `extra_headers` add facts about the reason (e.g. a size and its limit) after the others.
    Logs a warning naming the message's topic, partition and offset, and the reason.
    """
    logger.warning(
        "dead_letter",
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        reason=reason,
        error=detail,
    )
    headers = (
        *message.headers,
        ("dead_letter.reason", reason.encode()),
        ("dead_letter.error", detail.encode()[:MAX_DETAIL_BYTES]),
        ("dead_letter.source_topic", message.topic.encode()),
        ("dead_letter.source_partition", str(message.partition).encode()),
        ("dead_letter.source_offset", str(message.offset).encode()),
        *extra_headers,
    )
    return Outgoing(DEAD_LETTER_TOPIC, message.key, message.value or b"", headers)
