"""An owned partition's state changes only through its methods, which keep its rules."""

from __future__ import annotations

import pytest

from gapwatch.core.config import TrackerConfig
from gapwatch.monitor.state.partitions import OwnedPartitions, PartitionState


def owned() -> PartitionState:
    return OwnedPartitions(TrackerConfig()).add("t", 0)


class TestPartitionState:
    def test_fields_cannot_be_assigned_from_outside(self) -> None:
        """Writers must use the methods: a plain assignment is refused."""
        state = owned()
        with pytest.raises(AttributeError):
            state.position = 3  # type: ignore[misc]

    def test_first_leader_is_no_change(self) -> None:
        """The first leader seen is recorded, not counted, and needs no log check."""
        state = owned()
        state.seek(10)
        assert state.note_leader(1) is False
        assert (state.leader, state.leader_changes, state.checked_position) == (1, 0, 10)

    def test_a_leader_change_needs_a_check_until_verified(self) -> None:
        """A change is counted and needs a check, also at the next look, until verified."""
        state = owned()
        state.seek(10)
        state.note_leader(1)
        state.seek(20)
        assert state.note_leader(2) is True
        assert (state.leader_changes, state.needs_verify, state.checked_position) == (1, True, 10)
        assert state.note_leader(2) is True  # the check failed: try again
        state.note_verified(resume_at=15)
        assert (state.position, state.checked_position, state.needs_verify) == (15, 15, False)
        assert state.note_leader(2) is False

    def test_deleted_offsets_add_up_and_move_the_position(self) -> None:
        """Offsets deleted before they were read are counted; reading resumes at the start."""
        state = owned()
        state.note_deleted_unread(5, resume_at=5)
        state.note_deleted_unread(3, resume_at=8)
        assert (state.skipped, state.position) == (8, 8)

    def test_truncation_resumes_at_a_checked_position(self) -> None:
        """After a truncation the resume offset is both the position and the checked one."""
        state = owned()
        state.seek(50)
        state.note_truncated(resume_at=40)
        assert (state.position, state.checked_position) == (40, 40)
