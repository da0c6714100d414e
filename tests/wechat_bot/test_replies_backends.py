"""The bot's heavier queries on every database backend: the employer's lists (ordering with NULLs
last, counts per status) and the termination answers."""
from __future__ import annotations

import pytest

from tests.wechat_bot.test_replies import (  # noqa: F401 - fixtures and tests collected again here
    app,
    base,
    test_progress_of_an_employer_user_counts_by_status,
    test_termination_for_the_student_and_the_employer,
    test_todo_of_an_employer_lists_confirmations_and_signatures,
    world,
    wx,
)


@pytest.fixture
def db_url(any_db: str) -> str:
    return any_db
