"""The control API (default 127.0.0.1:8001): switch scenarios while the feed runs.

GET /health (no key): liveness, scenario, simulated time and feed counts.
GET /scenario, POST /scenario {"scenario": "...", "servers": [...]} (X-API-Key).
The POST body is read as JSON whatever its Content-Type: `curl -d '{...}'` sends
application/x-www-form-urlencoded. Bad JSON, unknown fields, unknown scenario names and
unknown or unsuitable servers are 422 with {"detail": [{"field": ..., "problem": ...}]}
("(body)" for JSON that cannot be parsed).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool

from simfeed.scenarios import ScenarioController, ScenarioError
from simfeed.settings import Scenario, Settings

logger = logging.getLogger(__name__)


class ScenarioRequest(BaseModel):
    """Body of POST /scenario; servers None (absent) means the scenario's defaults."""

    model_config = ConfigDict(extra="forbid")

    scenario: Scenario
    servers: list[str] | None = None


def parse_request(body: bytes) -> ScenarioRequest:
    """The request model from raw JSON; HTTPException 422 naming each bad field."""
    try:
        return ScenarioRequest.model_validate_json(body)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(body)", "problem": err["msg"]}
            for err in exc.errors()
        ]
        raise HTTPException(422, problems) from None


def _auth(settings: Settings) -> Callable[..., None]:
    expected = (settings.key() or "").encode()

    def check(x_api_key: Annotated[str | None, Header()] = None) -> None:
        if settings.insecure_no_auth:
            return
        if not x_api_key:
            raise HTTPException(401, "missing X-API-Key header")
        if not hmac.compare_digest(x_api_key.encode(), expected):
            raise HTTPException(403, "invalid API key")

    return check


def create_control_app(
    settings: Settings,
    controller: ScenarioController,
    feed_status: Callable[[], dict[str, Any]] | None = None,
) -> FastAPI:
    """The control API app; feed_status adds the sender's counts to /health."""
    app = FastAPI(title="Metrics generator control", docs_url=None, redoc_url=None)
    auth = [Depends(_auth(settings))]

    @app.get("/health")
    def health() -> dict[str, Any]:
        state = controller.state()
        body = {"status": "ok", "scenario": state["scenario"], "sim_time": state["sim_time"]}
        return body | ({"feed": feed_status()} if feed_status else {})

    @app.get("/scenario", dependencies=auth)
    def get_scenario() -> dict[str, Any]:
        return controller.state()

    @app.post("/scenario", dependencies=auth)
    async def post_scenario(request: Request) -> dict[str, Any]:
        wanted = parse_request(await request.body())
        try:
            return await run_in_threadpool(controller.switch, wanted.scenario, wanted.servers)
        except ScenarioError as exc:
            raise HTTPException(422, [{"field": "servers", "problem": str(exc)}]) from exc

    return app
