"""The problems of a /feed body's records, bounded for the answer.

A careless sender (one still on an old schema) can send tens of thousands of records that
each break many rules: the answer lists the first LISTED errors {index, field, problem},
counts every one per (field, problem) in error_counts, and rejected counts the records.
A problem names the rule broken; the value that broke it is only shown in listed errors
(" (got 130.0)"), so that the same rule broken by many values is counted as one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

LISTED = 100  # errors listed in a /feed answer (and groups in its error_counts)

# (field, problem, got): one problem of a record; got (e.g. " (got 130.0)") is shown in the
# listed error after the problem and is left out of the counts.
Found = tuple[str, str, str]


@dataclass
class Problems:
    """Errors of records in body order: the first `limit` listed (None: all), each
    counted per (field, problem); rejected counts the records added."""

    limit: int | None = LISTED
    errors: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejected: int = 0

    @property
    def listing(self) -> bool:
        """Whether another error would be listed (else its got need not be worked out)."""
        return self.limit is None or len(self.errors) < self.limit

    def add(self, index: int | None, found: list[Found]) -> None:
        """One rejected record's problems."""
        self.rejected += 1
        self.counts.update((name, problem) for name, problem, _ in found)
        room = len(found) if self.limit is None else max(self.limit - len(self.errors), 0)
        self.errors += [
            {"index": index, "field": name, "problem": problem + got}
            for name, problem, got in found[:room]
        ]

    def add_errors(self, errors: Iterable[dict[str, Any]]) -> None:
        """Records rejected with one error {index, field, problem} each."""
        for error in errors:
            self.add(error["index"], [(error["field"], error["problem"], "")])

    def counted(self) -> list[dict[str, Any]]:
        """error_counts: {field, problem, count}, the most frequent first (`limit` groups)."""
        return [
            {"field": name, "problem": problem, "count": count}
            for (name, problem), count in self.counts.most_common(self.limit)
        ]


def combine(parts: list[Problems], limit: int | None = LISTED) -> Problems:
    """The problems of several checks of one body (each holding its own first errors) as
    one: the first `limit` errors by record index, every count, every rejected record."""
    errors = sorted((e for p in parts for e in p.errors), key=_index)
    out = Problems(limit, errors[:limit], sum((p.counts for p in parts), Counter()))
    out.rejected = sum(p.rejected for p in parts)
    return out


def _index(error: dict[str, Any]) -> int:
    return -1 if error["index"] is None else error["index"]
