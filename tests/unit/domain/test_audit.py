"""The audit hash chain on plain values: hashing and verification."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from packyard.domain.audit import GENESIS_HASH, EventRecord, event_hash, verify_chain

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456)


def fields(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seq": 1,
        "at": T0,
        "actor": "alice",
        "action": "artifact.promote",
        "object_type": "artifact",
        "object_id": "ab" * 32,
        "before": {"stages": ["new"], "held": False},
        "after": {"stages": ["new", "ci"], "held": False, "stage": "ci"},
        "reason": "tests passed",
        "prev_hash": GENESIS_HASH,
    }
    return {**base, **overrides}


def chain(length: int) -> list[EventRecord]:
    """A valid chain of ``length`` events, built the way the repository appends them."""
    out: list[EventRecord] = []
    prev = GENESIS_HASH
    for seq in range(1, length + 1):
        values = fields(
            seq=seq, at=T0 + timedelta(seconds=seq), reason=f"event {seq}", prev_hash=prev
        )
        digest = event_hash(**values)
        out.append(EventRecord(**values, hash=digest))
        prev = digest
    return out


def test_event_hash_is_a_deterministic_sha256_hex() -> None:
    digest = event_hash(**fields())

    assert digest == event_hash(**fields())
    assert len(digest) == 64 and int(digest, 16) >= 0


def test_key_order_inside_before_and_after_does_not_matter() -> None:
    reordered = fields(after={"stage": "ci", "held": False, "stages": ["new", "ci"]})

    assert event_hash(**reordered) == event_hash(**fields())


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 2},
        {"at": T0 + timedelta(microseconds=1)},
        {"actor": "mallory"},
        {"action": "artifact.demote"},
        {"object_type": "package"},
        {"object_id": "cd" * 32},
        {"before": None},
        {"after": {"stages": ["new", "ci", "dev"]}},
        {"reason": None},
        {"reason": "tests passed "},
        {"prev_hash": "1" * 64},
    ],
    ids=lambda change: next(iter(change)),
)
def test_every_field_is_covered_by_the_hash(change: dict[str, Any]) -> None:
    assert event_hash(**fields(**change)) != event_hash(**fields())


def test_aware_and_naive_utc_times_hash_the_same() -> None:
    naive = event_hash(**fields(at=T0))

    assert event_hash(**fields(at=T0.replace(tzinfo=UTC))) == naive
    plus_two = timezone(timedelta(hours=2))
    assert event_hash(**fields(at=(T0 + timedelta(hours=2)).replace(tzinfo=plus_two))) == naive


def test_valid_chain_verifies() -> None:
    assert verify_chain(chain(5)) == (5, None)
    assert verify_chain([]) == (0, None)


def test_modified_event_is_detected_at_its_seq() -> None:
    events = chain(5)
    events[2] = dataclasses.replace(events[2], reason="nothing happened")

    checked, brk = verify_chain(events)

    assert checked == 3
    assert brk is not None
    assert brk.seq == 3
    assert brk.problem == "content does not match its hash: the event was modified"


def test_modified_and_rehashed_event_breaks_the_next_link() -> None:
    events = chain(5)
    forged = fields(
        **{
            f.name: getattr(events[2], f.name)
            for f in dataclasses.fields(EventRecord)
            if f.name != "hash"
        }
    )
    forged["reason"] = "nothing happened"
    events[2] = EventRecord(**forged, hash=event_hash(**forged))

    _, brk = verify_chain(events)

    assert brk is not None
    assert brk.seq == 4
    assert brk.problem == "previous-hash link does not match the event before it"


def test_removed_event_is_detected() -> None:
    events = chain(5)
    del events[1]

    checked, brk = verify_chain(events)

    assert (checked, brk is not None) == (2, True)
    assert brk is not None
    assert brk.seq == 3
    assert brk.problem == "expected event #2, found #3: events were removed or reordered"


def test_reordered_events_are_detected() -> None:
    events = chain(5)
    events[1], events[2] = events[2], events[1]

    _, brk = verify_chain(events)

    assert brk is not None
    assert brk.seq == 3
    assert "removed or reordered" in brk.problem


def test_renumbered_events_after_a_removal_are_detected() -> None:
    events = chain(4)
    del events[1]
    events = [dataclasses.replace(ev, seq=i) for i, ev in enumerate(events, start=1)]

    _, brk = verify_chain(events)

    assert brk is not None
    assert brk.seq == 2
    assert brk.problem == "previous-hash link does not match the event before it"


def test_chain_not_starting_at_genesis_is_detected() -> None:
    events = chain(3)

    _, brk = verify_chain(events[1:])

    assert brk is not None
    assert brk.seq == 2
    assert "expected event #1" in brk.problem


def test_removing_the_newest_events_is_invisible_to_the_chain_alone() -> None:
    # Documented limit: only the stored head (services.audit.verify) catches this.
    assert verify_chain(chain(5)[:-2]) == (3, None)
