"""The dashboard: a page a person watches (``GET /dashboard``, its script and styles beside it in
``static/``, no build step) and the JSON it polls (``GET /v1.0-alpha1/l8/dashboard``).

The page and its two files hold no data, so they are served without the API token (as the health
probes are, app/middleware.py): when a token is set the page shows a login form, keeps the token in
the tab's ``sessionStorage`` and sends it as ``dapr-api-token`` with every poll (never in a URL, gone
when the tab closes). The JSON answer needs the token like every other route. A request naming an
app (``dapr-app-id``) on these paths is invoked on that app."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response

from routers import schemas
from routers.actuator import runtime_state
from routers.http import json_response, services
from routers.table import RouteTable

routes = RouteTable(tags=["dashboard"])

PAGE = "/dashboard"
DATA = "/v1.0-alpha1/l8/dashboard"
_ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
PAGE_PATHS = frozenset({PAGE, *(f"{PAGE}/{name}" for name in _ASSETS)})
"""What a browser loads before it has a token: served without one."""
DASHBOARD_TEMPLATES = frozenset({*PAGE_PATHS, DATA})
"""Left out of the dashboard's own traffic charts: watching the page does not move them."""
_HEADERS = {
    "cache-control": "no-cache",
    # Everything from l8 itself; no inline script; never framed by another site.
    "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


@cache
def _static(name: str) -> bytes:
    return (files(__package__) / "static" / name).read_bytes()


def _file(name: str, media_type: str) -> Response:
    return Response(_static(name), media_type=media_type, headers=_HEADERS)


@routes.get(
    PAGE,
    app_path=True,
    summary="The dashboard (a web page)",
    description="Components and their health, subscriptions, rate limits, wasm functions, traffic "
    "per building block and recent errors, live. Served without the API token; when one is set the "
    "page asks for it and sends it as dapr-api-token with each poll.",
    responses={200: {"description": "The page", "content": {"text/html": {"schema": {"type": "string"}}}}},
    response_class=Response,
)
async def page(request: Request) -> Response:
    return _file("index.html", "text/html; charset=utf-8")


def _asset(name: str, media_type: str) -> None:
    async def asset(request: Request) -> Response:
        return _file(name, media_type)

    kind = media_type.partition(";")[0]
    routes.add(
        f"{PAGE}/{name}",
        asset,
        ["GET"],
        app_path=True,
        summary=f"The dashboard's {name}",
        description="One of the page's own files (served without the API token).",
        responses={200: {"description": name, "content": {kind: {"schema": {"type": "string"}}}}},
        response_class=Response,
    )


for _name, _type in _ASSETS.items():
    _asset(_name, _type)


@routes.get(
    DATA,
    summary="What the dashboard shows",
    description="The app, every component with its type, capabilities and health, subscriptions "
    "and their routes, rate-limit rules and their counters, wasm functions, traffic per building "
    "block (requests per second, p50 and p99 in ms, sampled every few seconds from the HTTP server "
    "histogram; null when metrics are off) and the last error answers, newest first.",
    responses={200: {"model": schemas.DashboardResponse, "description": "The dashboard's data"}},
    response_class=Response,
)
async def data(request: Request) -> Response:
    return json_response(await services(request).dashboard.describe(runtime_state(request)))
