"""The FastAPI app: routes, authentication and the lifespan (model, state, worker).

create_app(settings, model=...) builds it; with model=None the lifespan loads
settings.model (or, only with settings.baseline, falls back to the labelled seasonal
naive forecaster). Tests pass a forecaster and drive it through httpx.ASGITransport.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from inference.buffers import FleetBuffers
from inference.forecast import Forecaster
from inference.ingest import FeedRejected
from inference.loading import ModelLoadError, load_forecaster, reload_path
from inference.persistence import restore_state, save_state
from inference.service import InferenceService
from inference.settings import DaemonSettings
from inference.worker import ForecastWorker, settle_memory

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


def build_service(settings: DaemonSettings, forecaster: Forecaster) -> InferenceService:
    service = InferenceService(
        forecaster=forecaster,
        buffers=FleetBuffers(max_servers=settings.max_servers),
        cores=settings.server_cores(),
    )
    if settings.default_cores is not None:
        service.default_cores = settings.default_cores
    service.serve_better = settings.serve_better_method
    return service


def create_app(settings: DaemonSettings, model: Forecaster | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        forecaster = model or await asyncio.to_thread(load_forecaster, settings)
        service = build_service(settings, forecaster)
        if settings.state_dir is not None and restore_state(service, settings.state_dir):
            settle_memory()
        app.state.service = service
        worker = ForecastWorker(
            service,
            settings.coalesce_s,
            settings.retry_s,
            save=(lambda: save_state(service, settings.state_dir)) if settings.state_dir else None,
            save_every_s=settings.save_interval_s,
        )
        if settings.forecast_worker:
            worker.start()
        logger.info(
            "inference daemon ready: model %s (%s)",
            forecaster.info["name"],
            forecaster.info["kind"],
        )
        yield
        if settings.forecast_worker:
            worker.stop()
        if settings.state_dir is not None:
            save_state(service, settings.state_dir)

    app = FastAPI(title="TFT inference daemon", lifespan=lifespan)
    app.state.reloading = asyncio.Lock()
    _add_routes(app, settings, Depends(api_key_check(settings)))
    return app


def _add_routes(app: FastAPI, settings: DaemonSettings, auth: Any) -> None:
    def service() -> InferenceService:
        return app.state.service

    @app.post("/feed", dependencies=[auth])
    async def feed(request: Request) -> Response:
        body = await read_body(request, settings.max_body_bytes)
        try:
            result = service().feed(body)
        except FeedRejected as exc:
            logger.info("feed rejected: %s", exc)
            return JSONResponse({"status": "rejected", "applied": 0, "detail": exc.errors}, 422)
        return JSONResponse(result)

    @app.get("/predict", dependencies=[auth])
    async def predict(
        servers: str | None = None, trajectory: bool = False, accuracy: bool = False
    ) -> Response:
        names = [s for s in servers.split(",") if s] if servers else None
        parts = service().predict_parts(names, trajectory, accuracy)
        return StreamingResponse(parts, media_type="application/json")

    @app.api_route("/health", methods=["GET", "POST"])
    async def health() -> dict[str, Any]:
        return service().health()

    @app.get("/alerts", dependencies=[auth])
    async def alerts(min_level: str = "warning") -> dict[str, Any]:
        try:
            return service().alerts(min_level)
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
        except ModelLoadError as exc:
            logger.error(
                "model reload failed, still serving %s: %s", service.forecaster.info["name"], exc
            )
            serving = service.forecaster.info
            return JSONResponse({"status": "error", "detail": str(exc), "serving": serving}, 422)
        service.swap_forecaster(forecaster)
    logger.info("model reloaded: now serving %s", forecaster.info["name"])
    return JSONResponse({"status": "ok", "model": forecaster.info})
