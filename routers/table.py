"""How a route is declared: once, with its path, verbs, handler and documentation.

Each router module fills a :class:`RouteTable`; ``routers/api.py`` lists them in match order. From
that one list the assembly builds both the dispatcher that serves requests (app/dispatcher.py) and
the OpenAPI document (FastAPI's generator, fed the same declarations), so a route cannot be served
one way and documented another.

A handler takes the Request, then its path parameters by name, then the query parameters its
signature declares (``str | None``, the raw first value). It parses its own body (Dapr's lenient
rules and error codes) and returns a Response or raises an ``ApiError``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[..., Awaitable[Response]]

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
"""Every verb a sidecar route may take (Dapr's invocation verbs)."""


class AnyKeyConvertor(Convertor[str]):
    """The rest of the path, slashes and newlines included (``{key:anykey}``): a state key or a
    topic may hold any character once unescaped."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


# FastAPI resolves a convertor when it reads a declaration (for the OpenAPI document).
register_url_convertor("anykey", AnyKeyConvertor())


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    """The template: ``/v1.0/state/{storeName}/{key:anykey}``; a plain ``{name}`` is one segment."""
    methods: tuple[str, ...]
    handler: Handler
    doc: Mapping[str, Any] = field(default_factory=dict)
    """FastAPI's route arguments (summary, responses, operation_id...): the OpenAPI document only."""
    framework: bool = False
    """Served through FastAPI's full cycle (dependency injection, validation) instead of called
    directly: for a route that needs what that cycle buys, at ~5x the cost of a direct call."""
    documented: bool = True
    app_path: bool = False
    """A path an app may serve itself (Spring Boot's ``/actuator/...``): a request there that names
    an app (``dapr-app-id``) is invoked on that app, as on any path l8 does not serve."""

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(part[1:-1].partition(":")[0] for part in self.path.split("/") if part.startswith("{"))

    @property
    def query_params(self) -> tuple[str, ...]:
        """The handler's parameters after the Request that are not path parameters."""
        names = list(inspect.signature(self.handler).parameters)[1:]
        path = set(self.path_params)
        return tuple(name for name in names if name not in path)


class RouteTable:
    """The routes of one building block, in the order they are matched."""

    def __init__(self, *, tags: list[str] | None = None) -> None:
        self.tags = tags
        self.routes: list[Route] = []

    def add(
        self,
        path: str,
        handler: Handler,
        methods: list[str] | tuple[str, ...],
        *,
        framework: bool = False,
        include_in_schema: bool = True,
        app_path: bool = False,
        **doc: Any,
    ) -> None:
        if self.tags is not None:
            doc.setdefault("tags", self.tags)
        if not include_in_schema:
            doc["include_in_schema"] = False
        self.routes.append(Route(path, tuple(methods), handler, doc, framework, include_in_schema, app_path))

    def route(
        self, path: str, methods: list[str] | tuple[str, ...], **doc: Any
    ) -> Callable[[Handler], Handler]:
        def declare(handler: Handler) -> Handler:
            self.add(path, handler, methods, **doc)
            return handler

        return declare

    def get(self, path: str, **doc: Any) -> Callable[[Handler], Handler]:
        return self.route(path, ["GET"], **doc)

    def post(self, path: str, **doc: Any) -> Callable[[Handler], Handler]:
        return self.route(path, ["POST"], **doc)

    def put(self, path: str, **doc: Any) -> Callable[[Handler], Handler]:
        return self.route(path, ["PUT"], **doc)

    def delete(self, path: str, **doc: Any) -> Callable[[Handler], Handler]:
        return self.route(path, ["DELETE"], **doc)


__all__ = ["METHODS", "Handler", "Request", "Response", "Route", "RouteTable"]
