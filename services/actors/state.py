"""Actor state over the state store marked ``actorStateStore: "true"``, under Dapr's keys
``<appId>||<type>||<id>||<key>`` (the store's ``keyPrefix`` does not apply, as in daprd)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import orjson
import structlog

from components.errors import ComponentError, InvalidStateRequestError
from components.loaded import LoadedComponent
from components.metadata import parse_bool
from components.state.base import (
    DeleteRequest,
    Feature,
    GetRequest,
    SetRequest,
    StateItem,
    TransactionalStore,
    TransactionOperation,
)
from components.state.ttl import parse_ttl
from services import errors, json_body
from services.actors.names import state_key
from services.state import StateStoreHandle
from services.state_requests import json_type

log = structlog.get_logger(__name__)

ACTOR_STATE_STORE = "actorStateStore"


def actor_store_name(components: Iterable[LoadedComponent]) -> str | None:
    """The one state store marked ``actorStateStore: "true"`` that can hold actor state (ETags and
    transactions), or None. Several marked: the first, with a warning (daprd refuses to start)."""
    marked = [c for c in components if _marked(c.metadata)]
    usable = []
    for component in marked:
        features = frozenset(component.instance.features())
        if {Feature.ETAG, Feature.TRANSACTIONAL} <= features:
            usable.append(component)
        else:
            log.error("an actor state store needs ETags and transactions", component=component.name)
    if len(usable) > 1:
        log.warning("several actor state stores; the first is used", chosen=usable[0].name)
    return usable[0].name if usable else None


def _marked(metadata: Mapping[str, str]) -> bool:
    for name, value in metadata.items():
        if name.lower() == ACTOR_STATE_STORE.lower():
            try:
                return parse_bool(value)
            except ValueError:
                return False
    return False


class ActorState:
    def __init__(self, handle: StateStoreHandle | None, app_id: str) -> None:
        self.handle = handle
        self.app_id = app_id

    def _store(self) -> StateStoreHandle:
        if self.handle is None:
            raise errors.actor_runtime_not_found()
        return self.handle

    def require(self) -> None:
        self._store()

    async def get(self, actor_type: str, actor_id: str, key: str) -> StateItem | None:
        handle = self._store()
        request = GetRequest(state_key(self.app_id, actor_type, actor_id, key))
        try:
            return await handle.outbound.call(handle.store.get, request)
        except ComponentError as exc:
            raise errors.actor_state_get_failed(exc) from exc

    async def transact(self, actor_type: str, actor_id: str, body: Any) -> None:
        """Dapr's actor transaction: a bare JSON array of ``{operation, request}``."""
        handle = self._store()
        operations = self.operations(actor_type, actor_id, body)
        if not operations:
            return
        store = cast(TransactionalStore, handle.store)
        try:
            await handle.outbound.call(store.transact, operations, {})
        except ComponentError as exc:
            raise errors.actor_state_transaction_failed(exc) from exc

    def operations(self, actor_type: str, actor_id: str, body: Any) -> list[TransactionOperation]:
        if not isinstance(body, list):
            raise errors.malformed(
                f"json: cannot unmarshal {json_type(body)} into Go value of type "
                "[]actors.TransactionalOperation"
            )
        found: list[TransactionOperation] = []
        for raw in body:
            if not isinstance(raw, dict):
                raise errors.malformed(
                    f"json: cannot unmarshal {json_type(raw)} into an actor state operation"
                )
            kind = raw.get("operation")
            request = raw.get("request")
            if not isinstance(request, dict):
                raise errors.malformed("an actor state operation needs a request object")
            key = request.get("key")
            if not isinstance(key, str) or not key:
                raise errors.malformed('"key" is a required field')
            storage = state_key(self.app_id, actor_type, actor_id, key)
            etag = request.get("etag")
            etag = etag if isinstance(etag, str) and etag else None
            metadata = _metadata(request.get("metadata"))
            if kind == "upsert":
                try:
                    ttl = parse_ttl(metadata.get("ttlInSeconds"))
                except InvalidStateRequestError as exc:
                    raise errors.actor_state_transaction_failed(exc) from None
                found.append(
                    SetRequest(storage, _encoded(request.get("value")), etag=etag, ttl=ttl, metadata=metadata)
                )
            elif kind == "delete":
                found.append(DeleteRequest(storage, etag=etag, metadata=metadata))
            else:
                raise errors.unsupported_operation(
                    kind if isinstance(kind, str) else orjson.dumps(kind).decode()
                )
        return found


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise errors.malformed("an actor state operation's metadata must map names to strings")
    return dict(value)


def _encoded(value: Any) -> bytes:
    """A JSON value's encoding; bytes (a gRPC transaction's value) are stored as they are."""
    if isinstance(value, bytes):
        return value
    try:
        return json_body.dumps(value)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise errors.malformed(f"value cannot be stored as JSON: {exc}") from None
