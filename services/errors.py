"""The error catalogue: every error an API answers with, in Dapr's shape and status.

Routers and services raise :class:`ApiError` (built by the constructors below); the error door
(app/errors.py) renders it, whatever layer raised it. The catalogue knows Dapr's codes and HTTP
statuses but nothing of a transport, so a gRPC front door can map the same errors. Component
(domain) errors are turned into ApiErrors here, per operation, because the same ETag mismatch is
a 409 on save but a 500 inside a transaction (Dapr's table).
"""

from __future__ import annotations

from typing import Any

import orjson

from components.errors import ETagInvalidError, ETagMismatchError

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
RESOURCE_INFO = "type.googleapis.com/google.rpc.ResourceInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
HELP = "type.googleapis.com/google.rpc.Help"


class ApiError(Exception):
    """An answer in Dapr's error shape: ``{"errorCode", "message"[, "details"]}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers
        """Headers the answer carries besides the body's (a 416's Content-Range, an output binding's
        ``metadata.<key>`` beside its failure)."""

    def body(self) -> bytes:
        payload: dict[str, Any] = {"errorCode": self.code, "message": self.message}
        if self.details:
            payload["details"] = self.details
        return orjson.dumps(payload)


def _error_info(reason: str, metadata: dict[str, str] | None) -> dict[str, Any]:
    return {"@type": ERROR_INFO, "domain": "dapr.io", "reason": reason, "metadata": metadata}


def _resource_info(kind: str, name: str, description: str) -> dict[str, Any]:
    return {
        "@type": RESOURCE_INFO,
        "resource_type": kind,
        "resource_name": name,
        "owner": "",
        "description": description,
    }


class BodyTooLarge(Exception):
    """The request body exceeds --max-body-size. Endpoints answer with their parse error."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"stream too large: the request body exceeds the {limit}-byte limit (--max-body-size)"
        )


# -- generic ---------------------------------------------------------------------------------------


GO_ERROR = ""
"""The code of :func:`go_error`: no Dapr code at all."""


def go_error(message: str) -> ApiError:
    """Where daprd answers with a plain Go error (``errors.New``) rather than a coded one: over
    gRPC the status UNKNOWN with the message and no details (a streaming subscription's first
    message that is not an initial request, a topic the app may not subscribe to, ...)."""
    return ApiError(500, GO_ERROR, message)


def wasm_middleware_failed(name: str, reason: str) -> ApiError:
    """A ``middleware.http.wasm`` guest trapped, timed out or broke the ABI (Dapr answers 500)."""
    return ApiError(500, "ERR_WASM_MIDDLEWARE", f"wasm middleware {name!r} failed: {reason}")


def malformed(message: str) -> ApiError:
    return ApiError(400, "ERR_MALFORMED_REQUEST", message)


def body_read(reason: str) -> ApiError:
    """A body the reader gave up on (e.g. over --max-body-size) in Dapr's universal handlers."""
    return ApiError(400, "ERR_BODY_READ", f"failed to read request body: {reason}")


def no_app_id() -> ApiError:
    return ApiError(
        404, "ERR_DIRECT_INVOKE", "failed getting app id either from the URL path or the header dapr-app-id"
    )


def health_not_ready(targets: list[str]) -> ApiError:
    return ApiError(500, "ERR_HEALTH_NOT_READY", f"dapr is not ready: [{' '.join(targets)}]")


def health_app_id_mismatch() -> ApiError:
    return ApiError(500, "ERR_HEALTH_APPID_NOT_MATCH", "dapr app-id does not match")


def outbound_not_ready() -> ApiError:
    return ApiError(500, "ERR_OUTBOUND_HEALTH_NOT_READY", "dapr outbound is not ready")


# -- state -----------------------------------------------------------------------------------------


def state_store_not_configured(name: str, app_id: str) -> ApiError:
    message = f"state store {name} is not configured"
    details = [_error_info("DAPR_STATE_NOT_CONFIGURED", {"appID": app_id})]
    return ApiError(500, "ERR_STATE_STORE_NOT_CONFIGURED", message, details)


def state_store_not_found(name: str, app_id: str) -> ApiError:
    details = [_error_info("DAPR_STATE_NOT_FOUND", {"appID": app_id})]
    return ApiError(400, "ERR_STATE_STORE_NOT_FOUND", f"state store {name} is not found", details)


def illegal_key(store: str, key: str) -> ApiError:
    message = f"input key/keyPrefix '{key}' can't contain '||'"
    details = [
        _error_info("DAPR_STATE_ILLEGAL_KEY", None),
        _resource_info("state", store, message),
        {"@type": BAD_REQUEST, "field_violations": [{"field": key, "description": message}]},
    ]
    return ApiError(400, "ERR_MALFORMED_REQUEST", message, details)


def transactions_not_supported(store: str) -> ApiError:
    message = f"state store {store} doesn't support transactions"
    details = [
        _error_info("DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED", None),
        {
            "@type": HELP,
            "links": [
                {
                    "description": "Check the list of state stores and the features they support",
                    "url": "https://docs.dapr.io/reference/components-reference/supported-state-stores/",
                }
            ],
        },
    ]
    return ApiError(500, "ERR_STATE_STORE_NOT_SUPPORTED", message, details)


def query_not_supported(store: str) -> ApiError:
    details = [
        _error_info("DAPR_STATE_QUERYING_NOT_SUPPORTED", None),
        _resource_info("state", store, "state store does not support querying"),
    ]
    return ApiError(500, "ERR_STATE_STORE_NOT_SUPPORTED", "state store does not support querying", details)


def query_failed(store: str, error: Exception) -> ApiError:
    message = f"state store {store} query failed: {error}"
    details = [_error_info("DAPR_STATE_QUERY_FAILED", None), _resource_info("state", store, message)]
    return ApiError(500, "ERR_STATE_QUERY", message, details)


def unsupported_operation(operation: str) -> ApiError:
    return ApiError(400, "ERR_NOT_SUPPORTED_STATE_OPERATION", f"operation type {operation} not supported")


def _etag_status(error: Exception) -> int:
    if isinstance(error, ETagMismatchError):
        return 409
    if isinstance(error, ETagInvalidError):
        return 400
    return 500


def state_get_failed(store: str, key: str, error: Exception) -> ApiError:
    return ApiError(500, "ERR_STATE_GET", f"fail to get {key} from state store {store}: {error}")


def state_bulk_get_failed(error: Exception) -> ApiError:
    return ApiError(500, "ERR_STATE_BULK_GET", str(error))


def state_save_failed(store: str, error: Exception) -> ApiError:
    return ApiError(
        _etag_status(error), "ERR_STATE_SAVE", f"failed saving state in state store {store}: {error}"
    )


def state_delete_failed(key: str, error: Exception) -> ApiError:
    return ApiError(_etag_status(error), "ERR_STATE_DELETE", f"failed deleting state with key {key}: {error}")


def state_bulk_delete_failed(store: str, error: Exception) -> ApiError:
    """gRPC's DeleteBulkState (HTTP has no bulk delete)."""
    return ApiError(
        _etag_status(error), "ERR_STATE_BULK_DELETE", f"failed deleting state in state store {store}: {error}"
    )


def state_key_empty() -> ApiError:
    """A gRPC SaveState item without a key."""
    return ApiError(400, "ERR_STATE_SAVE", "state key cannot be empty")


def state_transaction_failed(error: Exception) -> ApiError:
    return ApiError(500, "ERR_STATE_TRANSACTION", f"error while executing state transaction: {error}")


# -- pubsub ----------------------------------------------------------------------------------------
# Dapr builds these with kit's error builder (pkg/api/errors/pubsub.go): a ResourceInfo detail
# (type "pubsub", the component's name, owner "", the message) and then an ErrorInfo whose reason is
# DAPR_PUBSUB_<suffix>; "not found" and "not configured" carry the ErrorInfo only.


def _pubsub_error(
    status: int,
    code: str,
    message: str,
    pubsub: str,
    reason: str,
    metadata: dict[str, str] | None,
    *,
    resource: bool = True,
) -> ApiError:
    info = _error_info(f"DAPR_PUBSUB_{reason}", metadata)
    details = [_resource_info("pubsub", pubsub, message), info] if resource else [info]
    return ApiError(status, code, message, details)


def pubsub_not_configured(pubsub: str, metadata: dict[str, str]) -> ApiError:
    """Dapr's answer when the runtime has no pub/sub support at all. A sidecar always has it (with
    no component loaded a name is "not found"), so this is in the catalogue for completeness."""
    return _pubsub_error(
        400,
        "ERR_PUBSUB_NOT_CONFIGURED",
        f"pubsub {pubsub} is not configured",
        pubsub,
        "NOT_CONFIGURED",
        metadata,
        resource=False,
    )


def pubsub_name_empty(metadata: dict[str, str]) -> ApiError:
    return _pubsub_error(404, "ERR_PUBSUB_EMPTY", "pubsub name is empty", "", "NAME_EMPTY", metadata)


def pubsub_not_found(pubsub: str, metadata: dict[str, str]) -> ApiError:
    message = f"pubsub {pubsub} is not found"
    return _pubsub_error(404, "ERR_PUBSUB_NOT_FOUND", message, pubsub, "NOT_FOUND", metadata, resource=False)


def topic_name_empty(pubsub: str, metadata: dict[str, str]) -> ApiError:
    message = f"topic is empty in pubsub {pubsub}"
    return _pubsub_error(404, "ERR_TOPIC_NAME_EMPTY", message, pubsub, "TOPIC_NAME_EMPTY", metadata)


def pubsub_request_metadata(pubsub: str, metadata: dict[str, str], reason: str) -> ApiError:
    message = f"failed deserializing metadata. Error: {reason}"
    return _pubsub_error(
        400, "ERR_PUBSUB_REQUEST_METADATA", message, pubsub, "METADATA_DESERIALIZATION", metadata
    )


def pubsub_forbidden(pubsub: str, topic: str, app_id: str) -> ApiError:
    message = f"topic {topic} is not allowed for app id {app_id}"
    metadata = {"topic": topic, "error": message}
    return _pubsub_error(403, "ERR_PUBSUB_FORBIDDEN", message, pubsub, "FORBIDDEN", metadata)


def pubsub_publish_failed(pubsub: str, topic: str, error: Exception | str) -> ApiError:
    message = f"error when publishing to topic {topic} in pubsub {pubsub}: {error}"
    metadata = {"topic": topic, "error": str(error)}
    return _pubsub_error(500, "ERR_PUBSUB_PUBLISH_MESSAGE", message, pubsub, "PUBLISH_MESSAGE", metadata)


def pubsub_cloud_event_creation(pubsub: str, app_id: str, error: str) -> ApiError:
    """An ``application/cloudevents+json`` body that is not a JSON object."""
    message = "cannot create cloudevent"
    metadata = {"appID": app_id, "error": error}
    return _pubsub_error(
        500, "ERR_PUBSUB_CLOUD_EVENTS_SER", message, pubsub, "CLOUD_EVENT_CREATION", metadata
    )


def pubsub_marshal_envelope(pubsub: str, topic: str, app_id: str, error: str) -> ApiError:
    """A bulk entry whose event does not fit its contentType."""
    message = f"error when marshalling cloud event envelope for topic {topic} pubsub {pubsub}: {error}"
    metadata = {"appID": app_id, "error": error}
    return _pubsub_error(400, "ERR_PUBSUB_EVENTS_SER", message, pubsub, "MARSHAL_ENVELOPE", metadata)


def pubsub_marshal_events(pubsub: str, topic: str, app_id: str, error: str) -> ApiError:
    """A bulk entry without an entryId, or with one another entry already has."""
    message = f"error marshaling events to bytes for topic {topic} pubsub {pubsub}. error: {error}"
    metadata = {"appID": app_id, "error": error}
    return _pubsub_error(400, "ERR_PUBSUB_EVENTS_SER", message, pubsub, "MARSHAL_EVENTS", metadata)


def pubsub_unmarshal_events(pubsub: str, topic: str, app_id: str, error: str) -> ApiError:
    """A bulk body that is not a JSON array of entry objects."""
    message = f"error when unmarshaling the request for topic {topic} pubsub {pubsub}: {error}"
    return _pubsub_error(400, "ERR_PUBSUB_EVENTS_SER", message, pubsub, "UNMARSHAL_EVENTS", {"appID": app_id})


# -- distributed lock (Dapr's messages) ------------------------------------------------------------


def lock_store_not_configured() -> ApiError:
    return ApiError(500, "ERR_LOCK_STORE_NOT_CONFIGURED", "lock store is not configured")


def lock_store_not_found(store: str) -> ApiError:
    return ApiError(400, "ERR_LOCK_STORE_NOT_FOUND", f"lock store {store} not found")


def lock_expiry_not_positive(store: str) -> ApiError:
    return malformed(f"ExpiryInSeconds is not positive in lock store {store}")


def lock_resource_empty(store: str) -> ApiError:
    return malformed(f"ResourceId is empty in lock store {store}")


def lock_owner_empty(store: str) -> ApiError:
    return malformed(f"LockOwner is empty in lock store {store}")


def try_lock_failed(error: Exception | str) -> ApiError:
    return ApiError(500, "ERR_TRY_LOCK", f"failed to try acquiring lock: {error}")


def unlock_failed(error: Exception | str) -> ApiError:
    return ApiError(500, "ERR_UNLOCK", f"failed to release lock: {error}")


def renew_lock_failed(error: Exception | str) -> ApiError:
    """l8's own (Dapr has no renewal), in the style of the two above."""
    return ApiError(500, "ERR_RENEW_LOCK", f"failed to renew lock: {error}")


# -- sequencer (Layotto's API; l8's codes in Dapr's style) -----------------------------------------


def sequencer_store_not_configured() -> ApiError:
    return ApiError(500, "ERR_SEQUENCER_STORE_NOT_CONFIGURED", "sequencer store is not configured")


def sequencer_store_not_found(store: str) -> ApiError:
    return ApiError(400, "ERR_SEQUENCER_STORE_NOT_FOUND", f"sequencer store {store} not found")


def sequencer_key_empty(store: str) -> ApiError:
    return malformed(f"Key is empty in sequencer store {store}")


def illegal_separator(key: str) -> ApiError:
    return malformed(f"input key/keyPrefix '{key}' can't contain '||'")


def next_id_failed(store: str, error: Exception | str) -> ApiError:
    return ApiError(
        500, "ERR_SEQUENCER_GET_NEXT_ID", f"failed to get next id from sequencer store {store}: {error}"
    )


# -- secrets (daprd's legacy messages; an unknown store is 401, as daprd answers) ---------------------


def secret_stores_not_configured() -> ApiError:
    return ApiError(500, "ERR_SECRET_STORES_NOT_CONFIGURED", "secret store is not configured")


def secret_store_not_found(store: str) -> ApiError:
    return ApiError(401, "ERR_SECRET_STORE_NOT_FOUND", f"failed finding secret store with key {store}")


def secret_permission_denied(name: str, store: str) -> ApiError:
    message = f"access denied by policy to get {_go_quote(name)} from {_go_quote(store)}"
    return ApiError(403, "ERR_PERMISSION_DENIED", message)


def secret_get_failed(name: str, store: str, error: Exception | str) -> ApiError:
    message = f"failed getting secret with key {name} from secret store {store}: {error}"
    return ApiError(500, "ERR_SECRET_GET", message)


def bulk_secret_get_failed(store: str, error: Exception | str) -> ApiError:
    return ApiError(500, "ERR_SECRET_GET", f"failed getting secrets from secret store {store}: {error}")


def _go_quote(text: str) -> str:
    """Go's ``%q``: a double-quoted string with Go's escapes (JSON's are the same for printable text)."""
    return orjson.dumps(text).decode()


# -- configuration (Dapr's messages; save and delete are Layotto's operations) ---------------------


class MessageOnlyError(ApiError):
    """Dapr's configuration unsubscribe failure: ``{"message"}`` with no errorCode."""

    def body(self) -> bytes:
        return orjson.dumps({"message": self.message})


def configuration_store_not_configured() -> ApiError:
    return ApiError(500, "ERR_CONFIGURATION_STORE_NOT_CONFIGURED", "configuration stores not configured")


def configuration_store_not_found(store: str) -> ApiError:
    return ApiError(400, "ERR_CONFIGURATION_STORE_NOT_FOUND", f"configuration store {store} not found")


def _go_list(keys: list[str]) -> str:
    return "[" + " ".join(keys) + "]"  # how Dapr's messages print a slice of keys


def configuration_get_failed(keys: list[str], store: str, error: Exception | str) -> ApiError:
    message = f"failed to get {_go_list(keys)} from Configuration store {store}: {error}"
    return ApiError(500, "ERR_CONFIGURATION_GET", message)


def configuration_subscribe_failed(keys: list[str], store: str, error: Exception | str) -> ApiError:
    message = f"failed to subscribe {_go_list(keys)} from Configuration store {store}: {error}"
    return ApiError(500, "ERR_CONFIGURATION_SUBSCRIBE", message)


def configuration_app_channel_nil() -> ApiError:
    message = "app channel is not initialized. cannot subscribe to configuration updates"
    return ApiError(500, "ERR_APP_CHANNEL_NIL", message)


def configuration_unsubscribe_failed(subscription_id: str, error: Exception | str) -> ApiError:
    return MessageOnlyError(
        500,
        "ERR_CONFIGURATION_UNSUBSCRIBE",
        f"failed to unsubscribe to configuration request {subscription_id}: {error}",
    )


def configuration_save_failed(store: str, error: Exception | str) -> ApiError:
    return ApiError(500, "ERR_CONFIGURATION_SAVE", f"failed to save configuration in store {store}: {error}")


def configuration_delete_failed(store: str, error: Exception | str) -> ApiError:
    return ApiError(
        500, "ERR_CONFIGURATION_DELETE", f"failed to delete configuration from store {store}: {error}"
    )


# -- files (Layotto's file API; l8's codes in Dapr's style) ----------------------------------------


def file_store_not_configured() -> ApiError:
    return ApiError(500, "ERR_FILE_STORE_NOT_CONFIGURED", "file store is not configured")


def file_store_not_found(store: str) -> ApiError:
    return ApiError(400, "ERR_FILE_STORE_NOT_FOUND", f"file store {store} not found")


def file_name_invalid(store: str, reason: str) -> ApiError:
    return malformed(f"invalid file name in file store {store}: {reason}")


def file_not_found(store: str, name: str) -> ApiError:
    return ApiError(404, "ERR_FILE_NOT_FOUND", f"file {name} not found in file store {store}")


def file_range_not_satisfiable(store: str, name: str, size: int) -> ApiError:
    message = f"the range asked of file {name} in file store {store} is not satisfiable: it has {size} bytes"
    return ApiError(
        416, "ERR_FILE_RANGE_NOT_SATISFIABLE", message, headers={"content-range": f"bytes */{size}"}
    )


def put_file_failed(store: str, name: str, error: Exception | str) -> ApiError:
    return ApiError(500, "ERR_PUT_FILE", f"failed to put file {name} in file store {store}: {error}")


def put_file_body_read(store: str, name: str, reason: str) -> ApiError:
    """The upload's body could not be read to its end (the client went away mid-upload)."""
    return ApiError(
        400, "ERR_BODY_READ", f"failed to read the body of file {name} for file store {store}: {reason}"
    )


def get_file_failed(store: str, name: str, error: Exception | str) -> ApiError:
    return ApiError(500, "ERR_GET_FILE", f"failed to get file {name} from file store {store}: {error}")


def delete_file_failed(store: str, name: str, error: Exception | str) -> ApiError:
    return ApiError(500, "ERR_DELETE_FILE", f"failed to delete file {name} from file store {store}: {error}")


def list_file_failed(store: str, error: Exception | str) -> ApiError:
    return ApiError(500, "ERR_LIST_FILE", f"failed to list files in file store {store}: {error}")


def file_meta_failed(store: str, name: str, error: Exception | str) -> ApiError:
    return ApiError(
        500, "ERR_FILE_META", f"failed to get the meta of file {name} in file store {store}: {error}"
    )


def file_list_page_size(store: str, value: str) -> ApiError:
    return malformed(f"pageSize {value!r} in file store {store} is not a number from 1 to 1000")


def file_list_argument(store: str, reason: str) -> ApiError:
    return malformed(f"invalid list request in file store {store}: {reason}")


# -- bindings --------------------------------------------------------------------------------------


def invoke_output_binding_failed(
    name: str, reason: Exception | str, headers: dict[str, str] | None = None
) -> ApiError:
    """Every output binding failure (not found, no or unsupported operation, the binding's own),
    with the binding's answer metadata as ``metadata.<key>`` headers when it gave any."""
    return ApiError(
        500, "ERR_INVOKE_OUTPUT_BINDING", f"error invoking output binding {name}: {reason}", headers=headers
    )


# -- WebAssembly functions -------------------------------------------------------------------------


def wasm_function_not_found(function_id: str) -> ApiError:
    return ApiError(404, "ERR_WASM_FUNCTION_NOT_FOUND", f"wasm function {function_id} is not found")


def wasm_function_trap(message: str) -> ApiError:
    return ApiError(500, "ERR_WASM_FUNCTION_TRAP", message)


def wasm_function_busy(message: str) -> ApiError:
    return ApiError(503, "ERR_WASM_FUNCTION_BUSY", message)


def wasm_function_exists(function_id: str) -> ApiError:
    return ApiError(409, "ERR_WASM_FUNCTION_EXISTS", f"wasm function {function_id} is already installed")


def wasm_module_invalid(name: str, reason: str) -> ApiError:
    return ApiError(400, "ERR_WASM_MODULE_INVALID", f"wasm function {name}: {reason}")


# -- actors ----------------------------------------------------------------------------------------


# -- binary store (Dapr 1.19's alpha binary-file API over the file stores) ------------------------
# daprd's own strings for these were not at hand (pkg/messages of 1.19): the codes follow its
# naming (ERR_<BLOCK>_<WHAT>) and the statuses are the ones its integration tests check.


def binary_store_not_found(store: str) -> ApiError:
    return ApiError(400, "ERR_BINARY_STORE_NOT_FOUND", f"binary store {store} is not found")


def binary_file_name_missing() -> ApiError:
    return ApiError(400, "ERR_BINARY_STORE_FILE_NAME_MISSING", "file name is missing")


def binary_file_name_invalid(name: str, reason: str) -> ApiError:
    return ApiError(400, "ERR_BINARY_STORE_FILE_NAME_INVALID", f"invalid file name {name!r}: {reason}")


def binary_file_not_found(store: str, name: str) -> ApiError:
    return ApiError(404, "ERR_BINARY_STORE_FILE_NOT_FOUND", f"file {name} not found in binary store {store}")


def binary_file_exists(store: str, name: str) -> ApiError:
    return ApiError(
        409, "ERR_BINARY_STORE_FILE_EXISTS", f"file {name} already exists in binary store {store}"
    )


def binary_set_failed(store: str, name: str, error: Exception | str) -> ApiError:
    return ApiError(
        500, "ERR_BINARY_STORE_SET", f"failed to set file {name} in binary store {store}: {error}"
    )


def binary_get_failed(store: str, name: str, error: Exception | str) -> ApiError:
    return ApiError(
        500, "ERR_BINARY_STORE_GET", f"failed to get file {name} from binary store {store}: {error}"
    )


def binary_delete_failed(store: str, name: str, error: Exception | str) -> ApiError:
    return ApiError(
        500, "ERR_BINARY_STORE_DELETE", f"failed to delete file {name} from binary store {store}: {error}"
    )


def bad_request(reason: str) -> ApiError:
    return ApiError(400, "ERR_BAD_REQUEST", f"invalid request: {reason}")


def actor_type_reserved(actor_type: str) -> ApiError:
    return ApiError(
        403, "ERR_ACTOR_TYPE_RESERVED", f"actor type {actor_type} is reserved for Dapr's internal use"
    )


def actor_runtime_closed() -> ApiError:
    return ApiError(503, "ERR_ACTOR_RUNTIME_CLOSED", "actor runtime is closed")


def actor_no_address() -> ApiError:
    """No live sidecar hosts the type (daprd: the placement table has no entry for it)."""
    return ApiError(404, "ERR_ACTOR_NO_ADDRESS", "did not find address for actor")


def actor_runtime_not_found() -> ApiError:
    return ApiError(
        500,
        "ERR_ACTOR_RUNTIME_NOT_FOUND",
        "the state store is not configured to use the actor runtime. Have you set the - name: "
        'actorStateStore value: "true" in your state store component file?',
    )


def actor_instance_missing() -> ApiError:
    return ApiError(400, "ERR_ACTOR_INSTANCE_MISSING", "actor instance is missing")


def actor_invoke_failed(reason: str) -> ApiError:
    return ApiError(500, "ERR_ACTOR_INVOKE_METHOD", f"error invoke actor method: {reason}")


def actor_stream_needs_grpc_channel() -> ApiError:
    """An actor host stream opened where the app has an HTTP channel (daprd: FailedPrecondition)."""
    return ApiError(
        400, "ERR_ACTOR_STREAM_NO_GRPC_CHANNEL", "actor callback streaming requires a gRPC app channel"
    )


def actor_stream_not_registered() -> ApiError:
    """An actor host stream whose first message is not the registration (daprd: InvalidArgument)."""
    return ApiError(
        400,
        "ERR_ACTOR_STREAM_NOT_REGISTERED",
        "first message must be SubscribeActorEventsRequestInitialAlpha1",
    )


def actor_stream_register_failed(reason: str) -> ApiError:
    """An actor host stream's types could not be hosted (placement's store away)."""
    return ApiError(500, "ERR_ACTOR_STREAM_REGISTER", f"failed to register hosted actors: {reason}")


def actor_stack_depth() -> ApiError:
    return ApiError(500, "ERR_ACTOR_STACK_DEPTH", "maximum stack depth exceeded")


def actor_state_get_failed(reason: Exception | str) -> ApiError:
    return ApiError(500, "ERR_ACTOR_STATE_GET", f"error getting actor state: {reason}")


def actor_state_transaction_failed(reason: Exception | str) -> ApiError:
    return ApiError(
        500, "ERR_ACTOR_STATE_TRANSACTION_SAVE", f"error saving actor transaction state: {reason}"
    )


def actor_reminder_non_hosted() -> ApiError:
    return ApiError(
        403,
        "ERR_ACTOR_REMINDER_NON_HOSTED",
        "operations on actor reminders are only possible on hosted actor types",
    )


def actor_reminder_create_failed(reason: Exception | str) -> ApiError:
    return ApiError(500, "ERR_ACTOR_REMINDER_CREATE", f"error creating actor reminder: {reason}")


def actor_reminder_get_failed(reason: Exception | str) -> ApiError:
    return ApiError(500, "ERR_ACTOR_REMINDER_GET", f"error getting actor reminder: {reason}")


def actor_reminder_delete_failed(reason: Exception | str) -> ApiError:
    return ApiError(500, "ERR_ACTOR_REMINDER_DELETE", f"error deleting actor reminder: {reason}")


def actor_reminder_not_found(name: str) -> ApiError:
    return ApiError(404, "ERR_ACTOR_REMINDER_NOT_FOUND", f"actor reminder not found: {name}")


def actor_reminder_exists(name: str) -> ApiError:
    return ApiError(409, "ERR_ACTOR_REMINDER_ALREADY_EXISTS", f"actor reminder already exists: {name}")


def actor_timer_create_failed(reason: Exception | str) -> ApiError:
    return ApiError(500, "ERR_ACTOR_TIMER_CREATE", f"error creating actor timer: {reason}")


def actor_timer_non_hosted() -> ApiError:
    return ApiError(
        403,
        "ERR_ACTOR_TIMER_NON_HOSTED",
        "operations on actor timers are only possible on hosted actor types",
    )


def actor_timer_not_owned(actor_type: str, actor_id: str) -> ApiError:
    """Timers live in the activation on the actor's owner: another sidecar has none to show."""
    return ApiError(
        403,
        "ERR_ACTOR_TIMER_NOT_OWNED",
        f"actor {actor_type}/{actor_id} is not hosted on this sidecar: its timers are on its owner's",
    )


def actor_timer_not_found(name: str) -> ApiError:
    return ApiError(404, "ERR_ACTOR_TIMER_NOT_FOUND", f"actor timer not found: {name}")


def actor_reminder_list_failed(reason: Exception | str) -> ApiError:
    return ApiError(500, "ERR_ACTOR_REMINDER_GET", f"error listing actor reminders: {reason}")


def actor_forward_refused() -> ApiError:
    """A call forwarded by another sidecar without the fleet's mesh token."""
    return ApiError(403, "ERR_PERMISSION_DENIED", "a forwarded actor call must carry the mesh token")


# -- jobs (the scheduler): daprd's reasons are the error codes, with an ErrorInfo (daprd's namespace
# when none is set: default) --------------------------------------------------------------------------


def _job_error(status: int, reason: str, message: str, app_id: str) -> ApiError:
    return ApiError(status, reason, message, [_error_info(reason, {"appID": app_id, "namespace": "default"})])


def job_name_in_body(app_id: str) -> ApiError:
    return _job_error(400, "DAPR_SCHEDULER_JOB_NAME", "Set the job name in the url only", app_id)


def job_name_empty(app_id: str) -> ApiError:
    """An empty job name, or one with ``|`` (daprd keeps it for its own keys)."""
    return _job_error(400, "DAPR_SCHEDULER_JOB_NAME_EMPTY", "Name is empty", app_id)


def job_schedule_empty(app_id: str) -> ApiError:
    return _job_error(400, "DAPR_SCHEDULER_SCHEDULE_EMPTY", "Schedule is empty", app_id)


def schedule_job_failed(app_id: str, reason: str, status: int = 500) -> ApiError:
    """The scheduler refused the job; the status is the one of the scheduler's gRPC code (409 for
    its AlreadyExists: the gRPC door answers ALREADY_EXISTS)."""
    return _job_error(
        status, "DAPR_SCHEDULER_SCHEDULE_JOB", f"failed to schedule job due to: {reason}", app_id
    )


def job_exists(app_id: str, name: str) -> ApiError:
    """A job of that name exists and the request did not ask to overwrite it."""
    reason = f"rpc error: code = AlreadyExists desc = job already exists: {name}"
    return schedule_job_failed(app_id, reason, 409)


def get_job_failed(app_id: str, reason: str) -> ApiError:
    return _job_error(500, "DAPR_SCHEDULER_GET_JOB", f"failed to get job due to: {reason}", app_id)


def delete_job_failed(app_id: str, reason: str) -> ApiError:
    return _job_error(500, "DAPR_SCHEDULER_DELETE_JOB", f"failed to delete job due to: {reason}", app_id)


def list_jobs_failed(app_id: str, reason: str) -> ApiError:
    return _job_error(500, "DAPR_SCHEDULER_LIST_JOBS", f"failed to list jobs due to: {reason}", app_id)
