"""Pages of a source read in a thread, one ahead of the adapter's loop (adapters/base.py)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Prefetch(Generic[T]):
    """Pages read in a thread, one ahead of the loop: the database's answer time overlaps
    with mapping and sending. close() ends the thread (the source's generator is closed
    there, so its cleanup, e.g. closing a point in time, runs)."""

    def __init__(self, pages: Iterator[T]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(pages,), daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[T]:
        while (item := self._queue.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self, pages: Iterator[T]) -> None:
        try:
            for page in pages:
                if not self._put(page):
                    break
        except BaseException as error:  # handed to the loop's thread, raised there
            self._put(error)
        finally:
            pages.close()  # type: ignore[attr-defined]
            self._put(_END)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


_END = object()
