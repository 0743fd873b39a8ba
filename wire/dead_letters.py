"""Dead letters: messages the ledger cannot read, kept with where they came from and why.

A dead letter keeps the original bytes whole up to MAX_DEAD_LETTER_VALUE_BYTES. A larger
value (only an oversized command can be one) is cut there, with its full size and SHA-256
in headers: with the broker's usual 1 MB limit, the whole value and the error headers might
not fit in one message, and a dead letter that cannot be written would stop the partition.
The original stays on its topic at the offset the headers name.
"""

from __future__ import annotations

import hashlib

import structlog

from infra.kafka import Headers, Message, Outgoing
from wire.topics import DEAD_LETTER_TOPIC

logger = structlog.get_logger(__name__)
MAX_DETAIL_BYTES = 2000
MAX_DEAD_LETTER_VALUE_BYTES = 512 * 1024


def dead_letter(
    message: Message, reason: str, detail: str, extra_headers: Headers = ()
) -> Outgoing:
    """The dead letter of `message`: its original key, bytes and headers, plus error headers.

    Bytes past MAX_DEAD_LETTER_VALUE_BYTES are cut off (see the module's docstring).

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
    value = message.value or b""
    if len(value) > MAX_DEAD_LETTER_VALUE_BYTES:
        headers += (
            ("dead_letter.truncated_to_bytes", str(MAX_DEAD_LETTER_VALUE_BYTES).encode()),
            ("dead_letter.original_bytes", str(len(value)).encode()),
            ("dead_letter.original_sha256", hashlib.sha256(value).hexdigest().encode()),
        )
        value = value[:MAX_DEAD_LETTER_VALUE_BYTES]
    return Outgoing(DEAD_LETTER_TOPIC, message.key, value, headers)
