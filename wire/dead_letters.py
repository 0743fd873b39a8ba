"""Dead letters: messages the ledger cannot read, kept with where they came from and why.

A dead letter keeps the original bytes whole up to MAX_DEAD_LETTER_VALUE_BYTES. A larger
value (only an oversized command can be one) is cut there, with its full size and SHA-256
in headers: with the broker's usual 1 MB limit, the whole value and the error headers might
not fit in one message, and a dead letter that cannot be written would stop the partition.
The original stays on its topic at the offset the headers name. A tombstone (no value) stays
a tombstone.

Dead letters are written at least once: a worker that dies after writing them and before
storing its position writes them again on restart. Every dead letter carries
`dead_letter.id`, the same for every copy of one source message (a UUID derived from the
Kafka cluster, topic, partition and offset it came from), so consumers can drop copies.
"""

from __future__ import annotations

import hashlib
import uuid

import structlog

from infra.kafka import Headers, Message, Outgoing
from wire.topics import DEAD_LETTER_TOPIC

logger = structlog.get_logger(__name__)
MAX_DETAIL_BYTES = 2000
MAX_DEAD_LETTER_VALUE_BYTES = 512 * 1024
# The namespace of dead-letter ids (uuid5 of "<cluster>/<topic>/<partition>/<offset>").
DEAD_LETTER_NAMESPACE = uuid.UUID("5d1e7a3c-2b4f-5e60-9a1b-6c7d8e9f0a1b")


def dead_letter(
    message: Message, reason: str, detail: str, extra_headers: Headers = (), *, cluster_id: str
) -> Outgoing:
    """The dead letter of `message` read on `cluster_id`: its original key, bytes (or
    tombstone) and headers, plus error headers and the stable `dead_letter.id`.

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
        ("dead_letter.id", dead_letter_id(cluster_id, message).encode()),
        ("dead_letter.reason", reason.encode()),
        ("dead_letter.error", detail.encode()[:MAX_DETAIL_BYTES]),
        ("dead_letter.source_topic", message.topic.encode()),
        ("dead_letter.source_partition", str(message.partition).encode()),
        ("dead_letter.source_offset", str(message.offset).encode()),
        *extra_headers,
    )
    value = message.value
    if value is not None and len(value) > MAX_DEAD_LETTER_VALUE_BYTES:
        headers += (
            ("dead_letter.truncated_to_bytes", str(MAX_DEAD_LETTER_VALUE_BYTES).encode()),
            ("dead_letter.original_bytes", str(len(value)).encode()),
            ("dead_letter.original_sha256", hashlib.sha256(value).hexdigest().encode()),
        )
        value = value[:MAX_DEAD_LETTER_VALUE_BYTES]
    return Outgoing(DEAD_LETTER_TOPIC, message.key, value, headers)


def dead_letter_id(cluster_id: str, message: Message) -> str:
    """The id every dead letter of `message` carries: the same for each copy written."""
    source = f"{cluster_id}/{message.topic}/{message.partition}/{message.offset}"
    return str(uuid.uuid5(DEAD_LETTER_NAMESPACE, source))
