"""feedclient: the outcome counter, the typed /feed answer (as the daemon sends it and as
clients read it, older daemons included) and the POST with its keep-alive resend."""

from __future__ import annotations

import copy
import logging
from typing import Any

import httpx
import orjson
import pytest

from feedclient.answer import FeedAnswer, read_answer
from feedclient.outcomes import OUTCOMES, Counts
from feedclient.post import FEED_PATH, post_feed, reason


def test_counts_hold_their_names_in_order_and_add_what_they_share() -> None:
    counts = Counts(("received", *OUTCOMES, "evicted_servers"), received=2)
    counts.applied += 1
    counts.add(FeedAnswer(received=3, applied=2, stale=1, servers=9))
    assert counts.as_dict() == {
        "received": 5,
        "applied": 3,
        "duplicates": 0,
        "stale": 1,
        "rejected": 0,
        "evicted_servers": 0,
    }
    other = Counts(applied=4)  # the outcomes alone
    other.add(counts)
    assert other == Counts(applied=7, stale=1) and other.text().startswith("7 applied, 0 dup")
    with pytest.raises(AttributeError, match="no count named 'aplied'"):
        counts.aplied = 1  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="no count named typo"):
        Counts(typo=1)
    assert copy.deepcopy(counts) == counts


def test_the_daemon_sends_only_what_it_set_in_order() -> None:
    unusable = FeedAnswer(
        status="rejected",
        received=0,
        **dict.fromkeys(OUTCOMES, 0),
        errors=[{"index": None, "field": "(body)", "problem": "not JSON"}],
        error_counts=[{"field": "(body)", "problem": "not JSON", "count": 1}],
    )
    body = orjson.loads(unusable.json_bytes())
    assert list(body) == ["status", "received", *OUTCOMES, "errors", "error_counts"]
    assert body["errors"][0]["index"] is None  # null, not left out
    full = FeedAnswer(
        status="ok", received=1, applied=1, new_servers=1, servers=1, warmup_progress=0.0
    )
    assert list(orjson.loads(full.json_bytes()))[-3:] == [
        "new_servers",
        "servers",
        "warmup_progress",
    ]
    assert FeedAnswer.status_for(3, 0) == "ok" and FeedAnswer.status_for(3, 1) == "partial"
    assert FeedAnswer.status_for(3, 3) == "rejected"


def _response(code: int, body: Any) -> httpx.Response:
    return httpx.Response(code, content=orjson.dumps(body))


def test_read_answer_fills_what_the_counts_leave_out_with_the_default() -> None:
    answer = read_answer(_response(200, {"applied": 7, "duplicates": 1, "stale": 1}), 10, "applied")
    assert answer.counts() == {"applied": 8, "duplicates": 1, "stale": 1, "rejected": 0}
    old = read_answer(_response(200, {"status": "ok"}), 5, "applied")  # an older daemon
    assert old.applied == 5 and old.received == 5 and old.warmup_progress is None
    detail = [{"index": 0, "field": "state", "problem": "unknown"}]
    refused = read_answer(_response(422, {"detail": detail}), 4, "rejected")
    assert (refused.rejected, refused.errors, refused.status) == (4, detail, "rejected")


def test_read_answer_never_fails_on_values_of_the_wrong_type() -> None:
    body = {"applied": -1, "stale": "2", "errors": ["x", {"field": "f"}], "warmup_progress": "9"}
    answer = read_answer(_response(200, body), 3, "applied")
    assert answer.applied == 3 and answer.stale == 0
    assert answer.errors == [{"field": "f"}] and answer.warmup_progress is None
    garbage = read_answer(httpx.Response(502, content=b"<html>"), 2, "rejected")
    assert garbage.rejected == 2 and garbage.errors == []


def test_post_feed_resends_once_on_a_broken_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script: list[Any] = [httpx.ReadError("reset"), 200]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == FEED_PATH
        assert request.headers["content-type"] == "application/json"
        outcome = script.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome, json={"applied": 1})

    client = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://daemon")
    with caplog.at_level(logging.INFO):
        response = post_feed(client, b"[]", logging.getLogger("test"))
    assert response.status_code == 200 and "resending at once" in caplog.text
    script[:] = [httpx.ReadError("reset"), httpx.ReadError("reset again")]
    with pytest.raises(httpx.ReadError):
        post_feed(client, b"[]")  # down for real: the caller backs off
    assert reason(httpx.ConnectError("refused")) == "ConnectError: refused"
    assert reason(httpx.ReadTimeout("")) == "ReadTimeout"
