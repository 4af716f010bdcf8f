"""What becomes of each record of a /feed body, and the one counter of those outcomes.

Every record the daemon answers for is applied, a duplicate (a tick seen before: retries
are safe), stale (too old for the daemon's buffers) or rejected (with its errors); the
daemon's answer counts them under these names (feedclient.answer.FeedAnswer).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

OUTCOMES: tuple[str, ...] = ("applied", "duplicates", "stale", "rejected")


class Counts:
    """Record counts by name, in a fixed order: the outcomes, and whatever else its holder
    counts, e.g. Counts(("received", *OUTCOMES, "evicted_servers")). Each count is an
    attribute (counts.applied += 3); a name it does not hold is an AttributeError."""

    __slots__ = ("_counts",)

    def __init__(self, names: Iterable[str] = OUTCOMES, /, **start: int) -> None:
        counts = dict.fromkeys(names, 0)
        unknown = start.keys() - counts.keys()
        if unknown:
            raise TypeError(f"no count named {', '.join(sorted(unknown))}; counts: {list(counts)}")
        counts.update(start)
        object.__setattr__(self, "_counts", counts)

    def __getattr__(self, name: str) -> int:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._counts[name]
        except KeyError:
            raise AttributeError(f"no count named {name!r}; counts: {list(self._counts)}") from None

    def __setattr__(self, name: str, value: int) -> None:
        if name not in self._counts:
            raise AttributeError(f"no count named {name!r}; counts: {list(self._counts)}")
        self._counts[name] = value

    def __reduce__(self) -> tuple[Any, tuple[dict[str, int]]]:  # copy and pickle
        return _counts_from, (dict(self._counts),)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counts) and self._counts == other._counts

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Counts({', '.join(f'{k}={v}' for k, v in self._counts.items())})"

    def add(self, other: Any) -> None:
        """Add the counts of other (Counts, a FeedAnswer, any object with such attributes)
        that this one holds too; others are left out."""
        counts = self._counts
        for name in counts:
            value = getattr(other, name, None)
            if isinstance(value, int):
                counts[name] += value

    def as_dict(self) -> dict[str, int]:
        return dict(self._counts)

    def text(self) -> str:
        """'3 applied, 0 duplicates, ...' in order."""
        return ", ".join(f"{v} {k}" for k, v in self._counts.items())


def _counts_from(counts: dict[str, int]) -> Counts:
    return Counts(counts, **counts)
