"""Customer feedback: a score from 0 to 10 (NPS style) with a comment, kept in the account's history.

`CustomerFeedback` is a part of the Account aggregate (a mixin); its events are account events.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ledger.account_state import AccountEvent, AccountPart
from ledger.errors import RuleViolation, check_range, check_text

MAX_FEEDBACK_ID_LENGTH = 128
MAX_COMMENT_LENGTH = 2000
MAX_TOPIC_LENGTH = 128
LOWEST_SCORE, HIGHEST_SCORE = 0, 10


class CustomerFeedback(AccountPart):
    """Recording what the customer said about the service."""

    if TYPE_CHECKING:  # provided by Account
        feedback_ids: set[str]

    class FeedbackRecorded(AccountEvent):
        """The customer scored the service and, perhaps, said why."""

        feedback_id: str
        score: int
        comment: str
        topic: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.feedback_ids.add(self.feedback_id)

    def record_feedback(
        self,
        *,
        command_id: str,
        issued_at: datetime,
        feedback_id: str,
        score: int,
        comment: str,
        topic: str | None,
    ) -> None:
        """Record one piece of feedback; each feedback_id is recorded once."""
        check_text("feedback_id", feedback_id, MAX_FEEDBACK_ID_LENGTH)
        if feedback_id in self.feedback_ids:
            raise DuplicateFeedback(
                f"feedback {feedback_id!r} is already recorded on account {self.account_id!r}",
                field="feedback_id",
            )
        check_range("score", score, LOWEST_SCORE, HIGHEST_SCORE)
        check_text("comment", comment, MAX_COMMENT_LENGTH, required=False)
        if topic is not None:
            check_text("topic", topic, MAX_TOPIC_LENGTH)
        self._record(
            self.FeedbackRecorded,
            issued_at,
            command_id,
            feedback_id=feedback_id,
            score=score,
            comment=comment,
            topic=topic,
        )


class DuplicateFeedback(RuleViolation):
    """The feedback id is already recorded on the account."""

    code = "duplicate_feedback"
