"""A report's sections printed as a table for people, JSON or CSV for scripts."""

from __future__ import annotations

import json

from runtime.report_format import render

SECTIONS = {
    "days": [
        {"currency": "EUR", "day": "2024-03-14", "scheduled_minor": 1500, "probability": None},
        {"currency": "EUR", "day": "2024-03-15", "scheduled_minor": 12000, "probability": 0.75},
    ],
    "accuracy": [],
}


class TestRender:
    """Each format keeps every section and every value."""

    def test_table_aligns_numbers_right(self) -> None:
        """Columns are as wide as their widest cell; numbers align right; a blank line
        parts sections; an empty one says so."""
        assert render(SECTIONS, "table").splitlines() == [
            "days",
            "currency  day         scheduled_minor  probability",
            "--------  ----------  ---------------  -----------",
            "EUR       2024-03-14             1500",
            "EUR       2024-03-15            12000         0.75",
            "",
            "accuracy: none",
        ]

    def test_json_is_an_object_of_arrays(self) -> None:
        """JSON reads back as the sections themselves."""
        assert json.loads(render(SECTIONS, "json")) == SECTIONS

    def test_csv_blocks_per_section(self) -> None:
        """CSV heads each section with `# name`, then its header and rows."""
        assert render(SECTIONS, "csv").splitlines() == [
            "# days",
            "currency,day,scheduled_minor,probability",
            "EUR,2024-03-14,1500,",
            "EUR,2024-03-15,12000,0.75",
            "",
            "# accuracy",
        ]
