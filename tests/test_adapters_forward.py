"""adapters/forward.py: /feed answers, splitting, and what counts as unavailable."""

from __future__ import annotations

import json

import httpx
import pytest

from adapters.base import forward_to
from adapters.forward import DaemonRefused, DaemonUnavailable, Forwarder
from adapters.quarantine import Quarantine


def forwarder(handler) -> Forwarder:  # noqa: ANN001
    client = httpx.Client(base_url="http://daemon", transport=httpx.MockTransport(handler))
    return Forwarder(client=client)


def partial(request: httpx.Request) -> httpx.Response:
    records = json.loads(request.content)
    errors = [{"index": 1, "field": "mem_used_pct", "problem": "not a number"}]
    body = {"status": "partial", "received": len(records), "applied": len(records) - 1}
    return httpx.Response(
        200, json=body | {"duplicates": 0, "stale": 0, "rejected": 1, "errors": errors}
    )


def test_rejected_records_go_to_the_quarantine_with_the_daemon_reason(tmp_path) -> None:  # noqa: ANN001
    quarantine = Quarantine(tmp_path / "q.jsonl")
    send = forward_to(forwarder(partial), quarantine, batch_size=3)
    totals = send([{"n": k} for k in range(5)])  # two batches: 3 + 2
    assert (totals.records, totals.applied, totals.rejected) == (5, 3, 2)
    lines = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [line["record"] for line in lines] == [{"n": 1}, {"n": 4}]
    assert lines[0]["errors"][0]["problem"] == "not a number" and lines[0]["kind"] == "rejected"


def test_a_refused_batch_without_per_record_errors_is_quarantined_whole(tmp_path) -> None:  # noqa: ANN001
    def refused(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            422,
            json={
                "status": "rejected",
                "applied": 0,
                "errors": [{"field": "body", "problem": "bad"}],
            },
        )

    quarantine = Quarantine(tmp_path / "q.jsonl")
    totals = forward_to(forwarder(refused), quarantine, batch_size=10)([{"n": 1}, {"n": 2}])
    assert totals.rejected == 2 and quarantine.count == 2


def test_rejections_past_the_answers_error_list_are_counted_and_logged(tmp_path, caplog) -> None:  # noqa: ANN001
    def capped(request: httpx.Request) -> httpx.Response:  # 3 rejected, the first 1 listed
        errors = [{"index": 0, "field": "timestamp", "problem": "ahead"}]
        body = {"status": "rejected", "applied": 0, "duplicates": 0, "stale": 0}
        return httpx.Response(422, json=body | {"rejected": 3, "errors": errors})

    quarantine = Quarantine(tmp_path / "q.jsonl")
    totals = forward_to(forwarder(capped), quarantine, batch_size=10)([{"n": k} for k in range(3)])
    assert totals.rejected == 3 and quarantine.count == 1
    assert "rejected 3 records of a batch but named only 1" in caplog.text


def test_413_splits_the_batch() -> None:
    sizes: list[int] = []

    def small(request: httpx.Request) -> httpx.Response:
        n = len(json.loads(request.content))
        sizes.append(n)
        if n > 2:
            return httpx.Response(413)
        return httpx.Response(200, json={"applied": n})

    answers = forwarder(small).send([{"n": k} for k in range(5)])
    assert sum(a.applied for a, _ in answers) == 5 and sizes == [5, 2, 3, 1, 2]


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (401, DaemonRefused),
        (403, DaemonRefused),
        (503, DaemonUnavailable),
        (429, DaemonUnavailable),
        (404, DaemonUnavailable),
    ],
)
def test_unanswered_batches_raise(code: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        forwarder(lambda request: httpx.Response(code)).send([{"n": 1}])


def test_connection_refused_is_unavailable() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(DaemonUnavailable, match="cannot reach the daemon"):
        forwarder(down).send([{"n": 1}])
