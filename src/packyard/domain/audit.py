"""The hash chain that makes the audit log tamper-evident.

Each event's hash covers its own canonical content and the previous event's hash, so changing,
removing or reordering any stored event breaks every hash after it. ``verify_chain`` walks
events in order and reports the first break. Not handled here: storing events or protecting
the newest hash against a rewrite of the whole tail (export it elsewhere for that).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["GENESIS_HASH", "ChainBreak", "EventRecord", "event_hash", "verify_chain"]

GENESIS_HASH = "0" * 64


@dataclass(frozen=True, kw_only=True)
class EventRecord:
    """An audit event as stored."""

    seq: int
    at: datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    reason: str | None
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        """What ``hash`` must be: ``event_hash`` of this event's content and ``prev_hash``."""
        return event_hash(**{k: v for k, v in vars(self).items() if k != "hash"})


def event_hash(
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    reason: str | None,
    prev_hash: str,
) -> str:
    """SHA-256 over the canonical JSON of the event and the previous hash."""
    body = {
        "seq": seq,
        "at": _canonical_time(at),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "before": before,
        "after": after,
        "reason": reason,
        "prev": prev_hash,
    }
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()


def _canonical_time(at: datetime) -> str:
    # Databases differ in whether they keep tzinfo; hash a naive UTC microsecond string.
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")


@dataclass(frozen=True, kw_only=True)
class ChainBreak:
    seq: int
    problem: str


def verify_chain(events: Iterable[EventRecord]) -> tuple[int, ChainBreak | None]:
    """Check the chain; returns (events checked, first break or None)."""
    prev = GENESIS_HASH
    expected_seq = 1
    count = 0
    for ev in events:
        count += 1
        if ev.seq != expected_seq:
            return count, ChainBreak(
                seq=ev.seq,
                problem=f"expected event #{expected_seq}, "
                f"found #{ev.seq}: events were removed or reordered",
            )
        if ev.prev_hash != prev:
            return count, ChainBreak(
                seq=ev.seq, problem="previous-hash link does not match the event before it"
            )
        computed = ev.expected_hash()
        if computed != ev.hash:
            return count, ChainBreak(
                seq=ev.seq, problem="content does not match its hash: the event was modified"
            )
        prev = ev.hash
        expected_seq += 1
    return count, None
