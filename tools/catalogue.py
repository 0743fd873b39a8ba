"""The message catalogue in Markdown, generated from schemas/ (`python -m tools.catalogue`)."""

from __future__ import annotations

import json
from typing import Any

from wire.codec import AvroCodec

SECTIONS = (
    (
        "billing.commands",
        "Commands",
        "Published by upstream systems to `billing.commands`, keyed by account id.",
    ),
    (
        "billing.events",
        "Events",
        "Published by the ledger to `billing.events`, keyed by account id.",
    ),
    (
        "billing.results",
        "Results",
        "Published by the ledger to `billing.command-results`, keyed by account id.",
    ),
)


def render(codec: AvroCodec) -> str:
    """The catalogue: every command, event and result schema with its fields."""
    lines = [
        "# Message catalogue",
        "",
        "Generated from `schemas/` by `python -m tools.catalogue`; do not edit by hand.",
        "Every message is Avro single-object encoded: `C3 01`, the 8-byte little-endian",
        "CRC-64-AVRO fingerprint of the writer schema, then the Avro binary body.",
    ]
    for namespace, title, where in SECTIONS:
        lines += ["", f"## {title}", "", where]
        for name in codec.schema_names:
            if name.rpartition(".")[0] == namespace:
                lines += _schema(codec, name)
    return "\n".join(lines) + "\n"


def _schema(codec: AvroCodec, name: str) -> list[str]:
    schema = codec.schema(name)
    lines = [
        "",
        f"### {name.rpartition('.')[2]}",
        "",
        f"`{name}`, fingerprint `{codec.fingerprint(name).hex()}`.",
    ]
    if schema.get("doc"):
        lines += ["", schema["doc"]]
    lines += ["", "| field | type | default | meaning |", "|---|---|---|---|"]
    for field in schema["fields"]:
        default = json.dumps(field["default"]) if "default" in field else ""
        lines.append(
            f"| `{field['name']}` | {_type(field['type'])} | {default} | {field.get('doc', '')} |"
        )
    return lines


def _type(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        return " or ".join(_type(t) for t in avro_type)
    if isinstance(avro_type, dict):
        if "logicalType" in avro_type:
            return str(avro_type["logicalType"])
        if avro_type["type"] == "array":
            return f"array of {_type(avro_type['items'])}"
        if avro_type["type"] == "enum":
            return f"`{avro_type['name'].rpartition('.')[2]}`: " + ", ".join(avro_type["symbols"])
        if avro_type["type"] == "record":
            return f"`{avro_type['name'].rpartition('.')[2]}` record"
        return str(avro_type["type"])
    return str(avro_type).rpartition(".")[2]


if __name__ == "__main__":
    print(render(AvroCodec()), end="")
