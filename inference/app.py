"""The FastAPI app: routes, authentication and the lifespan (model, state, worker).

Handlers do their blocking work (parsing, applying, rendering) in the thread pool, not on
the event loop: a 13 MiB /feed body must not stall /health and /predict. The exception
is /feed bodies up to INLINE_BODY_BYTES (1 MiB) that the fast path takes whole, which
cost less than the hop; any other body (a record to check with the contract's model) is
checked in the pool.

create_app(settings, model=...) builds it; with model=None the lifespan loads
settings.model (or, only with settings.baseline, falls back to the labelled seasonal
naive forecaster). Tests pass a forecaster and drive it through httpx.ASGITransport.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

import data_contract as dc
from contract_parse import FeedRejected, TooManyRecords
from inference import early_warning as ew
from inference import views
from inference.buffers import FleetBuffers
from inference.feed import unusable_body
from inference.forecast import Forecaster
from inference.loading import ModelLoadError, load_forecaster, reload_path
from inference.persistence import restore_state, save_state
from inference.service import InferenceService
from inference.settings import DaemonSettings
from inference.wal import WriteAheadLog, WriteAheadLogError
from inference.worker import ForecastWorker, WalFlusher, settle_memory
from trouble.model import WarningModel

logger = logging.getLogger(__name__)


def api_key_check(settings: DaemonSettings) -> Any:
    """Dependency: 401 without X-API-Key, 403 with a wrong one (constant-time compare)."""
    expected = (settings.key() or "").encode()

    async def check(request: Request) -> None:
        if not expected and settings.insecure_no_auth:
            return
        given = request.headers.get("x-api-key")
        if given is None:
            raise HTTPException(401, "missing X-API-Key header")
        if not expected or not hmac.compare_digest(given.encode(), expected):
            raise HTTPException(403, "invalid API key")

    return check


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it is known to exceed limit bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def build_service(
    settings: DaemonSettings,
    forecaster: Forecaster,
    clock: Callable[[], float] = time.time,
    *,
    warning: WarningModel | None = None,
) -> InferenceService:
    buffers = FleetBuffers(
        max_servers=settings.max_servers,
        close_grace_s=settings.close_grace_s,
        min_observed_share=settings.min_observed_share,
        history_steps=ew.HISTORY_STEPS,
    )
    service = InferenceService(
        forecaster=forecaster,
        buffers=buffers,
        warning=warning,
        cores=settings.server_cores(),
        max_clock_skew_s=settings.max_clock_skew_s,
        max_records=settings.max_records_per_body,
        silent_after_s=settings.silent_after_s,
        evict_after_s=settings.evict_after_s,
        clock=clock,
    )
    if settings.default_cores is not None:
        service.default_cores = settings.default_cores
    service.serve_better = settings.serve_better_method
    return service


def create_app(
    settings: DaemonSettings,
    model: Forecaster | None = None,
    *,
    warning: WarningModel | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The daemon's app; clock (epoch seconds) is the wall clock, replaceable in tests.
    model=None loads settings.model and its early-warning estimate; with a model, warning
    is its estimate (None: risk.py's rules)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        forecaster, estimate = model, warning
        if forecaster is None:
            forecaster = await asyncio.to_thread(load_forecaster, settings)
            estimate = await asyncio.to_thread(ew.warning_for, forecaster, settings.model)
        service = build_service(settings, forecaster, clock, warning=estimate)
        await asyncio.to_thread(_restore, service, settings)
        app.state.service = service
        flusher = None
        if service.wal is not None:  # a snapshot recovers the log after a failed fsync
            save = partial(_save, service, settings)
            flusher = WalFlusher(service.wal, settings.wal_fsync_s, recover=save)
            flusher.start()
        worker = ForecastWorker(
            service,
            settings.coalesce_s,
            settings.retry_s,
            save=(lambda: _save(service, settings)) if settings.state_dir else None,
            save_every_s=settings.save_interval_s,
        )
        if settings.forecast_worker:
            worker.start()
        logger.info(
            "inference daemon ready: model %s (%s)",
            forecaster.info["name"],
            forecaster.info["kind"],
        )
        try:
            yield
            if settings.forecast_worker:
                worker.stop()
            if settings.state_dir is not None:
                _save(service, settings)
        finally:
            if flusher is not None:
                flusher.stop()
            if service.wal is not None:
                service.wal.close()

    auth = Depends(api_key_check(settings))
    app = FastAPI(
        title="TFT inference daemon",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.reloading = asyncio.Lock()
    _add_routes(app, settings, auth)
    if settings.docs:
        _add_docs(app, auth)
    return app


def _add_docs(app: FastAPI, auth: Any) -> None:
    """/openapi.json and /docs behind the key (TFT_DOCS; off by default). The docs page
    fetches the schema with the browser's headers: send X-API-Key, or read the schema
    with curl. app.openapi() works without these routes (the fuzz tests use it)."""

    @app.get("/openapi.json", dependencies=[auth], include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", dependencies=[auth], include_in_schema=False)
    def docs() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=app.title)


def _restore(service: InferenceService, settings: DaemonSettings) -> None:
    """Restore the state file and replay the write-ahead log, if there is a state_dir."""
    if settings.state_dir is None:
        return
    if settings.wal:
        service.wal = WriteAheadLog(settings.state_dir / "wal")
    if restore_state(service, settings.state_dir, service.wal):
        settle_memory()


def _save(service: InferenceService, settings: DaemonSettings) -> None:
    save_state(service, settings.state_dir, service.wal)


# /feed bodies up to this size that the fast path takes whole are applied on the event
# loop: about 2,000 records, under 10 ms of work, where a hop to the thread pool cost a
# quarter of /feed's throughput (bench/bench_daemon.py, 1,000-record batches). Larger ones,
# and any with a record the fast path does not take, go to the thread pool, so that a
# 13 MiB body, or 1 MiB of invalid records, does not stall /health and /predict.
INLINE_BODY_BYTES = 1024 * 1024

FEED_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"type": "array", "items": dc.MetricRecord.model_json_schema()}
        }
    },
}


def _add_routes(app: FastAPI, settings: DaemonSettings, auth: Any) -> None:
    def service() -> InferenceService:
        return app.state.service

    @app.post("/feed", dependencies=[auth], openapi_extra={"requestBody": FEED_BODY})
    async def feed(request: Request) -> Response:
        body = await read_body(request, settings.max_body_bytes)
        try:
            result = service().feed_fast(body) if len(body) <= INLINE_BODY_BYTES else None
            if result is None:
                result = await run_in_threadpool(service().feed, body)
        except FeedRejected as exc:
            logger.warning("feed rejected: %s", exc)
            result = unusable_body(exc.errors)
        except TooManyRecords as exc:  # senders split the batch and send it again
            logger.warning("feed refused (413): %s", exc)
            return JSONResponse({"detail": str(exc)}, 413)
        except (OSError, WriteAheadLogError) as exc:  # nothing acknowledged: senders retry
            logger.error("feed not logged durably, answering 503: %s", exc)
            return JSONResponse({"detail": f"write-ahead log: {exc}"}, 503)
        code = 422 if result.status == "rejected" else 200
        return Response(result.json_bytes(), code, media_type="application/json")

    @app.get("/predict", dependencies=[auth])
    def predict(
        server: Annotated[list[str] | None, Query()] = None,
        servers: str | None = None,
        trajectory: bool = False,
        accuracy: bool = False,
    ) -> Response:
        """?server=NAME (repeated; names may hold commas) and ?servers=a,b (comma-separated)."""
        split = [s for s in servers.split(",") if s] if servers else []
        names = list(dict.fromkeys((server or []) + split)) or None
        parts = views.predict_parts(service(), names, trajectory, accuracy)
        return StreamingResponse(parts, media_type="application/json")

    def health() -> dict[str, Any]:
        return views.health(service())

    app.add_api_route("/health", health, methods=["GET"])
    app.add_api_route("/health", health, methods=["POST"], operation_id="health_post")

    @app.get("/history", dependencies=[auth])
    def history(server: str) -> dict[str, Any]:
        found = views.history(service(), server)
        if found is None:
            raise HTTPException(404, f"unknown server {server!r}: not in the daemon's buffers")
        return found

    @app.get("/alerts", dependencies=[auth])
    def alerts(min_level: str = "warning") -> dict[str, Any]:
        try:
            return views.alerts(service(), min_level)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.post("/admin/reload-model", dependencies=[auth])
    async def reload_model(request: Request) -> Response:
        return await _reload(app, settings, await read_body(request, 64 * 1024))


async def _reload(app: FastAPI, settings: DaemonSettings, body: bytes) -> Response:
    service: InferenceService = app.state.service
    if app.state.reloading.locked():
        return JSONResponse({"status": "busy", "detail": "a reload is in progress"}, 409)
    async with app.state.reloading:
        try:
            path = reload_path(settings, body)
            forecaster = await asyncio.to_thread(load_forecaster, settings, path, False)
            estimate = await asyncio.to_thread(ew.warning_for, forecaster, path)
        except (ModelLoadError, ew.WarningLoadError) as exc:
            logger.error(
                "model reload failed, still serving %s: %s", service.forecaster.info["name"], exc
            )
            serving = service.forecaster.info
            return JSONResponse({"status": "error", "detail": str(exc), "serving": serving}, 422)
        service.swap_forecaster(forecaster, estimate)
    logger.info("model reloaded: now serving %s", forecaster.info["name"])
    return JSONResponse({"status": "ok", "model": forecaster.info})
