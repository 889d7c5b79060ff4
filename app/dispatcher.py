"""The dispatcher: serves every request from the one route table (routers/api.py).

Routes are matched as Dapr's router matches them, on the path as it was escaped: a plain
``{name}`` takes one escaped segment (so ``my%2Fstore`` is the name ``my/store``), ``{key:anykey}``
the rest of the path, and parameters are unescaped once matched. The table is compiled at start
into a dict keyed on the path's first two segments (``/v1.0/state``) holding, in declaration order,
one regular expression per distinct template with the handlers by verb: a request costs one dict
lookup and a regex match or two, then a direct call of the handler. Only routes declared
``framework=True`` (and FastAPI's own documentation pages) go through FastAPI's cycle.

Whatever does not match goes to the fallback route (invocation by the ``dapr-app-id`` header).
The shared rate limits (mesh/ratelimit), once the lifespan has started them, are checked before a
route runs; then the wasm middleware of ``httpPipeline`` (wasm/http_pipeline.py) runs around the
route's matching (GET on the health paths excepted), so a guest's rewritten path is the one
matched. Every ApiError leaves through the error door (app/errors.py); anything else propagates
to the middleware, which logs it and answers 500 through the same door.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import ApiError, answer, send_error
from app.middleware import ROUTE_TEMPLATE, is_probe, names_an_app
from mesh.ratelimit import RateLimits
from observability.recent_errors import RecentErrors
from routers.table import Route
from services import errors
from wasm.http_pipeline import HttpPipeline

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PAGE_METHODS = ("GET", "HEAD")
_CONVERTORS = {None: "[^/]+", "str": "[^/]+", "anykey": "(?s:.*)", "path": "(?s:.*)"}


class BadEscape(ValueError):
    """A path parameter whose escapes are not ``%XX`` or do not spell UTF-8 (Go answers 400)."""


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Template:
    """One compiled path template and the routes declared on it, by verb."""

    template: str
    pattern: re.Pattern[str]
    by_method: dict[str, Route]
    query: dict[str, tuple[str, ...]]
    """Each verb's handler's query parameters."""


def group_key(path: str) -> str:
    """The first two segments of a path (``/v1.0/state``), the dispatcher's first lookup."""
    second = path.find("/", 1)
    if second < 0:
        return path
    third = path.find("/", second + 1)
    return path if third < 0 else path[:third]


def compile_template(template: str) -> re.Pattern[str]:
    pattern, end = ["^"], 0
    for found in _PARAM.finditer(template):
        pattern.append(re.escape(template[end : found.start()]))
        convertor = found.group(2)
        if convertor not in _CONVERTORS:
            raise ValueError(f"{template}: unknown convertor {convertor!r}")
        pattern.append(f"(?P<{found.group(1)}>{_CONVERTORS[convertor]})")
        end = found.end()
    pattern.append(re.escape(template[end:]) + "$")
    return re.compile("".join(pattern))


def _literal_key(template: str) -> str | None:
    """The group a template belongs to, or None when its first two segments are not literal."""
    key = group_key(template)
    return None if "{" in key else key


class Dispatcher:
    def __init__(
        self,
        routes: Iterable[Route],
        fallback: Route,
        framework: ASGIApp,
        framework_paths: Iterable[str] = (),
        recent_errors: RecentErrors | None = None,
    ) -> None:
        self.recent_errors = recent_errors if recent_errors is not None else RecentErrors()
        """Every error answer the dispatcher sends, for the dashboard."""
        self._groups: dict[str, list[_Template]] = {}
        self._fallback = fallback
        self._fallback_query = fallback.query_params
        self._framework = framework
        self._framework_paths = frozenset(framework_paths)
        self.limits: RateLimits | None = None
        """The started runtime's rate limits; set by the lifespan."""
        self.pipeline: HttpPipeline | None = None
        """The started runtime's wasm middleware (``httpPipeline``); set by the lifespan."""
        for route in routes:
            key = _literal_key(route.path)
            if key is None:
                raise ValueError(f"{route.path}: the first two segments of a route must be literal")
            templates = self._groups.setdefault(key, [])
            same = next((t for t in templates if t.template == route.path), None)
            if same is None:
                same = _Template(route.path, compile_template(route.path), {}, {})
                templates.append(same)
            for method in route.methods:
                if method in same.by_method:
                    raise ValueError(f"{method} {route.path} is declared twice")
                same.by_method[method] = route
                same.query[method] = route.query_params

    def match(self, method: str, path: str) -> Match | None:
        """The route serving ``method`` on the escaped ``path``, with its unescaped parameters;
        None when only the fallback (or FastAPI's own pages) would take it."""
        found = self._find(method, path)
        return None if found is None else Match(found[0], found[1])

    def _find(self, method: str, path: str) -> tuple[Route, dict[str, str], tuple[str, ...]] | None:
        templates = self._groups.get(group_key(path))
        if templates is None:
            return None
        for template in templates:
            route = template.by_method.get(method)
            if route is None:
                continue
            matched = template.pattern.match(path)
            if matched is None:
                continue
            params = matched.groupdict()
            for name, value in params.items():
                if "%" in value:
                    params[name] = _unescape(value)
            return route, params, template.query[method]
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limits = self.limits
        if limits:
            refusal = await limits.check(scope)
            if refusal is not None:
                error = ApiError(refusal.status, "ERR_TOO_MANY_REQUESTS", refusal.message)
                self._note(scope, error, scope["path"])
                await send_error(send, error, [(b"retry-after", str(refusal.retry_after).encode())])
                return
        pipeline = self.pipeline
        # Probes pass untouched, as they pass the API token: a guest must not take a sidecar down.
        if pipeline and not is_probe(scope):
            try:
                await pipeline(scope, receive, send, self._route)
            except ApiError as exc:
                self._note(scope, exc, scope.get(ROUTE_TEMPLATE) or scope["path"])
                await send_error(send, exc)
            return
        await self._route(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw: bytes | None = scope.get("raw_path")
        path = raw.decode("latin-1") if raw else quote(scope["path"])
        method: str = scope["method"]
        try:
            found = self._find(method, path)
        except BadEscape as exc:
            error = errors.malformed(str(exc))
            self._note(scope, error, scope["path"])
            await send_error(send, error)
            return
        if found is None:
            if scope["path"] in self._framework_paths and _framework_page(scope):
                await self._framework(scope, receive, send)
                return
            if method not in self._fallback.methods:
                error = errors.no_app_id()
                self._note(scope, error, scope["path"])
                await send_error(send, error)
                return
            found = (self._fallback, {"path": path.lstrip("/")}, self._fallback_query)
        route, params, query = found
        if route.app_path and names_an_app(scope):  # the app's own /actuator, invoked
            route, params, query = self._fallback, {"path": path.lstrip("/")}, self._fallback_query
        scope[ROUTE_TEMPLATE] = route.path
        if route.framework:
            await self._framework(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            if query and scope["query_string"]:
                response = await route.handler(request, **params, **_query(scope["query_string"], query))
            else:
                response = await route.handler(request, **params)
        except ApiError as exc:
            self._note(scope, exc, route.path)
            response = answer(exc)
        await response(scope, receive, send)

    def _note(self, scope: Scope, error: ApiError, route: str) -> None:
        self.recent_errors.record(error.status, error.code, error.message, scope["method"], route)


def _query(raw: bytes, names: tuple[str, ...]) -> dict[str, str | None]:
    """The first value of each name, as Go's ``Query().Get`` reads it (Starlette's would be the last)."""
    found: dict[str, str | None] = dict.fromkeys(names)
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name in found and found[name] is None:
            found[name] = value
    return found


def _unescape(value: str) -> str:
    if _BAD_ESCAPE.search(value):
        raise BadEscape(f"invalid URL escape in {value!r}")
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError:
        raise BadEscape(f"invalid URL escape in {value!r}: not UTF-8") from None


def _framework_page(scope: Scope) -> bool:
    """FastAPI's pages answer GET and HEAD; anything else there, or a call naming an app, is the
    fallback's (invocation by ``dapr-app-id``), as on any other path."""
    if scope["method"] not in _PAGE_METHODS:
        return False
    return not names_an_app(scope)
