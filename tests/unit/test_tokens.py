"""A token's id is its slot: the formatting and parsing the Fleet relies on to keep loops within max_loops."""

from __future__ import annotations

import pytest

from sqsloops.tokens import Token, slot_index_of, slot_name


def test_slot_ids_sort_in_slot_order_and_parse_back() -> None:
    ids = [slot_name(s) for s in (0, 7, 10, 999)]

    assert ids == ["slot-0000", "slot-0007", "slot-0010", "slot-0999"]
    assert ids == sorted(ids)
    assert [slot_index_of(i) for i in ids] == [0, 7, 10, 999]
    assert slot_index_of(slot_name(12345)) == 12345


@pytest.mark.parametrize("token", ["4f1c0e9a2b7d4c1e8f0a", "slot-7", "slot--001", "slot-", "slot-00x1", "SLOT-0001"])
def test_an_id_that_is_not_a_slot_names_no_slot(token: str) -> None:
    assert slot_index_of(token) is None
    assert Token(queue_url="q", slot=token, loop_id="l", created_at=0, last_used=0).slot_index is None


def test_a_negative_slot_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        slot_name(-1)
