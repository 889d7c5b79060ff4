"""Shapes for the OpenAPI document. Handlers parse bodies themselves (Dapr's lenient rules and
error codes), so these models document the wire format; they are not used to validate."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    errorCode: str = Field(description="Dapr's error code, e.g. ERR_STATE_STORE_NOT_FOUND")
    message: str
    details: list[dict[str, Any]] | None = Field(None, description="google.rpc error details")


class MessageBody(BaseModel):
    message: str = Field(description="Dapr's configuration unsubscribe failure carries no errorCode")


class StateOptions(BaseModel):
    concurrency: Literal["first-write", "last-write"] | None = None
    consistency: Literal["strong", "eventual"] | None = None


class SaveStateItem(BaseModel):
    model_config = ConfigDict(
        regex_engine="python-re", json_schema_extra={"example": {"key": "a", "value": {"x": 1}}}
    )

    key: str = Field(min_length=1, pattern=r"^(?!.*\|\|)", description="must not contain '||'")
    value: Any = Field(None, description="any JSON value; stored as its JSON text")
    etag: str | None = Field(None, description="the ETag this write expects to replace")
    metadata: dict[str, str] | None = Field(None, description="e.g. ttlInSeconds")
    options: StateOptions | None = None


class BulkGetRequest(BaseModel):
    keys: list[str] = Field(default_factory=list)
    parallelism: int | None = Field(None, ge=0)
    metadata: dict[str, str] | None = None


class BulkStateItem(BaseModel):
    key: str
    data: Any = Field(None, description="the stored JSON value; absent for a missing key")
    etag: str | None = None
    metadata: dict[str, str] | None = None
    error: str | None = None


class TransactionOperation(BaseModel):
    operation: Literal["upsert", "delete"]
    request: SaveStateItem


class TransactionRequest(BaseModel):
    operations: list[TransactionOperation] = Field(default_factory=list)
    metadata: dict[str, str] | None = None


class QuerySort(BaseModel):
    key: str
    order: Literal["ASC", "DESC"] = "ASC"


class QueryPage(BaseModel):
    limit: int = Field(0, ge=0)
    token: str | None = Field(None, pattern=r"^[0-9]*$")


class StateQuery(BaseModel):
    filter: dict[str, Any] | None = Field(None, description='{"EQ": {"a.b": "v"}}, {"AND": [...]}...')
    sort: list[QuerySort] | None = None
    page: QueryPage | None = None


class QueryResultItem(BaseModel):
    key: str
    data: Any = None
    etag: str | None = None
    error: str | None = None


class QueryResult(BaseModel):
    results: list[QueryResultItem]
    token: str | None = None
    metadata: dict[str, str] | None = None


class ComponentInfo(BaseModel):
    name: str
    type: str
    version: str
    capabilities: list[str]


class AppConnectionProperties(BaseModel):
    port: int | None = None
    protocol: str
    channelAddress: str


class ActorRuntime(BaseModel):
    runtimeStatus: str
    activeActors: list[dict[str, Any]] | None = None
    hostReady: bool | None = None
    placement: str | None = None


class MetadataResponse(BaseModel):
    id: str
    runtimeVersion: str
    components: list[ComponentInfo]
    extended: dict[str, str]
    subscriptions: list[dict[str, Any]] | None = None
    httpEndpoints: list[dict[str, Any]] | None = None
    nameResolution: dict[str, Any] | None = Field(
        None, description="l8's own: the name resolver of service invocation (type, and what it knows)"
    )
    appConnectionProperties: AppConnectionProperties | None = None
    actors: list[dict[str, Any]] | None = Field(
        None, description="Deprecated alias of actorRuntime.activeActors"
    )
    actorRuntime: ActorRuntime | None = None
    placement: dict[str, Any] | None = Field(
        None,
        description="l8's own: the actor placement this sidecar sees (its store, status, hosted types, "
        "the hosts of each actor type it has read, its claims)",
    )
    scheduler: SchedulerInfo | None = None


class SchedulerInfo(BaseModel):
    connected_addresses: list[str] = Field(
        description="where the scheduler's jobs live (snake_case, as daprd writes it): the Redis or etcd "
        "of name_resolution, or sqlite:<path>"
    )


class BulkPublishEntry(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {"entryId": "1", "event": {"orderId": 1}, "contentType": "application/json"}
        }
    )

    entryId: str = Field(min_length=1, description="unique within the request (entryID also accepted)")
    event: Any = Field(
        None,
        description="a base64 string for application/octet-stream, a string for text/* and "
        "application/xml, any JSON for application/json and application/cloudevents+json",
    )
    contentType: str
    metadata: dict[str, str] | None = Field(
        None, description="merged over the request's metadata.* parameters for this entry"
    )


class TryLockRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"resourceId": "order-1", "lockOwner": "uuid-1", "expiryInSeconds": 60}}
    )

    resourceId: str = Field(description="the resource to lock (resource_id also accepted); no '||'")
    lockOwner: str = Field(description="the caller's own id for this lock, e.g. a UUID per request")
    expiryInSeconds: int = Field(gt=0, description="how long the lock lasts unless unlocked or renewed")


class UnlockRequest(BaseModel):
    resourceId: str
    lockOwner: str


class TryLockResponse(BaseModel):
    success: bool = Field(description="false when someone else holds the lock (not an error)")


class LockStatusResponse(BaseModel):
    status: int = Field(
        description="0 SUCCESS, 1 LOCK_DOES_NOT_EXIST, 2 LOCK_BELONGS_TO_OTHERS, 3 INTERNAL_ERROR"
    )


class SequencerOptions(BaseModel):
    increment: Literal["WEAK", "STRONG"] = Field(
        "WEAK",
        description="WEAK (default): unique and trend-increasing, served from a reserved block; "
        "STRONG: strictly increasing across every sidecar sharing the store",
    )


class GetNextIdRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"key": "order", "options": {"increment": "STRONG"}}}
    )

    key: str = Field(min_length=1, description="the sequence's name; no '||'")
    options: SequencerOptions | None = None
    metadata: dict[str, str] | None = None


class GetNextIdResponse(BaseModel):
    nextId: str = Field(description="int64 as a decimal string (proto3 JSON mapping)")


class ConfigurationItemBody(BaseModel):
    value: str | None = None
    version: str | None = None
    metadata: dict[str, str] | None = None


class SubscribeConfigurationResponse(BaseModel):
    id: str


class UnsubscribeConfigurationResponse(BaseModel):
    ok: bool


class SaveConfigurationItem(BaseModel):
    key: str = Field(min_length=1)
    content: str = ""
    group: str | None = Field(None, description="blank: the store's default group (default)")
    label: str | None = Field(None, description="blank: the store's default label (default)")
    tags: dict[str, str] | None = None
    metadata: dict[str, str] | None = None


class SaveConfigurationRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"items": [{"key": "orders.limit", "content": "10"}]}}
    )

    appId: str | None = Field(None, description="accepted and ignored, as Layotto's proto says")
    items: list[SaveConfigurationItem]
    metadata: dict[str, str] | None = None


class DeleteConfigurationRequest(BaseModel):
    appId: str | None = Field(None, description="accepted and ignored")
    group: str | None = None
    label: str | None = None
    keys: list[str] = Field(min_length=1)
    metadata: dict[str, str] | None = None


class FileInfoBody(BaseModel):
    fileName: str
    size: str = Field(description="int64 as a decimal string (proto3 JSON mapping)")
    lastModified: str = Field(description="RFC 3339, UTC; empty when the store does not know it")
    metadata: dict[str, str] = Field(description="empty for file.s3 (S3 lists no metadata)")


class ListFileResponse(BaseModel):
    files: list[FileInfoBody]
    marker: str = Field(description="the last name of this page: the next page's marker")
    isTruncated: bool = Field(description="true while more files follow")


class OutputBindingRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "data": {"orderId": 1},
                "metadata": {"fileName": "order-1.json"},
                "operation": "create",
            }
        }
    )

    data: Any = Field(
        None,
        description="Any JSON; the binding receives it re-encoded as Go's json.Marshal writes it (a "
        "string arrives with its quotes, absent data as null)",
    )
    metadata: dict[str, str] | None = Field(None, description="binding-specific (fileName, key, sql...)")
    operation: str = Field(description="binding-specific: create, get, list, delete, exec, query...")


# Request bodies referenced from routes' openapi_extra; create_app registers them as components.
REQUEST_MODELS: list[type[BaseModel]] = [
    SaveStateItem,
    BulkGetRequest,
    TransactionRequest,
    StateQuery,
    BulkPublishEntry,
    TryLockRequest,
    UnlockRequest,
    GetNextIdRequest,
    SaveConfigurationRequest,
    DeleteConfigurationRequest,
    OutputBindingRequest,
    MessageBody,  # referenced by the unsubscribe answer
]


def json_body(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


REFERENCED: dict[str, type[BaseModel]] = {}
"""Every model a route's documentation points at through :func:`ref`, so the document defines it."""


def ref(model: type[BaseModel]) -> dict[str, str]:
    REFERENCED[model.__name__] = model
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def raw_body(description: str) -> dict[str, Any]:
    """A request body of any content type, taken as bytes."""
    return {
        "requestBody": {
            "required": False,
            "description": description,
            "content": {"*/*": {"schema": {}}},
        }
    }


def errors_doc(codes: dict[int, list[str]]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for Dapr errors, listing the codes each status can carry."""
    return {
        status: {"model": ErrorBody, "description": "Dapr error: " + ", ".join(names)}
        for status, names in codes.items()
    }


METADATA_NOTE = (
    "Query parameters named metadata.<name> (e.g. metadata.ttlInSeconds, metadata.partitionKey) are "
    "passed to the store with the prefix removed."
)

PUBLISH_METADATA_NOTE = (
    "Query parameters named metadata.<name> go to the broker with the prefix removed; "
    "metadata.rawPayload=true publishes the body without a CloudEvent, metadata.ttlInSeconds (or "
    "metadata.ttl) sets a message TTL, metadata.cloudevent.<id|source|type|subject|traceid|traceparent|"
    "tracestate> override envelope fields."
)


class WasmInstallRequest(BaseModel):
    """Layotto's plugin entry (``vm_config.path``, ``instance_num``, other string keys: the plugin
    configuration), or l8's settings form (``path``, ``instanceNum``, ``config``, ``timeout``,
    ``memoryPages``, ``poolWait``)."""

    model_config = ConfigDict(extra="allow")
    name: str
    instance_num: int | None = None
    vm_config: dict[str, str] | None = None


class WasmNameRequest(BaseModel):
    name: str


class WasmUpdateRequest(BaseModel):
    name: str
    instance_num: int


HealthStatus = Literal["UP", "DOWN", "INIT"]


class HealthIndicator(BaseModel):
    status: HealthStatus
    details: dict[str, Any] | None = Field(
        None, description="The component's type; why it is DOWN or INIT (reason). Omitted when empty."
    )


class HealthResponse(BaseModel):
    """Layotto's actuator health: DOWN when any indicator is DOWN, else INIT when any is, else UP."""

    status: HealthStatus
    components: dict[str, HealthIndicator]


class ActuatorComponent(BaseModel):
    name: str
    type: str
    version: str


class ActuatorInfo(BaseModel):
    app: dict[str, Any] = Field(description="name, version, daprApiVersion, appId, startTime, uptimeSeconds")
    components: list[ActuatorComponent]
    loggers: dict[str, str] = Field(description="The log levels set, by logger name (root included)")


class LoggerLevelRequest(BaseModel):
    component: str = Field(
        description="A logger's name: a module path (components.state.redis), a prefix of one "
        "(components), l8.api (the API log), or root; Layotto's slashes (components/lock) work too"
    )
    level: Literal["trace", "debug", "info", "warn", "warning", "error", "fatal", "critical"]


class DashboardApp(BaseModel):
    id: str
    version: str
    daprApiVersion: str
    startTime: str
    uptimeSeconds: float
    status: Literal["UP", "DOWN", "INIT"]


class DashboardComponent(BaseModel):
    name: str
    type: str
    version: str
    capabilities: list[str]
    health: Literal["UP", "DOWN", "INIT", "UNKNOWN"]
    reason: str | None = Field(None, description="Why the health check failed")


class DashboardSubscription(BaseModel):
    pubsubname: str
    topic: str
    routes: list[dict[str, str]] = Field(description="{match, path} in evaluation order; the default last")
    deadLetterTopic: str
    type: str


class DashboardSeries(BaseModel):
    rps: list[float] = Field(description="Requests answered per second, one per interval")
    p50: list[float | None] = Field(description="Median latency (ms); null with no request")
    p99: list[float | None] = Field(description="99th percentile latency (ms); null with no request")


class DashboardTraffic(BaseModel):
    intervalSeconds: float
    times: list[float] = Field(description="Each point's time (Unix seconds), oldest first")
    blocks: dict[str, DashboardSeries] = Field(description="By building block (state, invoke, ...)")


class DashboardError(BaseModel):
    time: float = Field(description="Unix seconds")
    status: int
    code: str = Field(description="Dapr's errorCode (empty for a refused API token)")
    message: str
    method: str
    route: str = Field(description="The route's template, or the path when no route took it")


class DashboardResponse(BaseModel):
    app: DashboardApp
    components: list[DashboardComponent]
    subscriptions: list[DashboardSubscription]
    rateLimits: list[dict[str, Any]] = Field(description="Each rule with allowed, queued and refused counts")
    wasmFunctions: list[dict[str, Any]] = Field(description="Each function with calls, errors, traps")
    actors: dict[str, Any] = Field(description="The actor runtime (Dapr's actorRuntime)")
    traffic: DashboardTraffic | None = Field(description="null when metrics are off")
    errors: list[DashboardError] = Field(description="The last error answers, newest first")


# -- actors ----------------------------------------------------------------------------------------


class ActorStateRequest(BaseModel):
    key: str
    value: Any = None
    etag: str | None = None
    metadata: dict[str, str] | None = Field(None, description="ttlInSeconds: the value's lifetime")


class ActorStateOperation(BaseModel):
    operation: Literal["upsert", "delete"]
    request: ActorStateRequest


class ReminderRequest(BaseModel):
    dueTime: str | None = Field(None, description="A duration (10s, PT10S) or an RFC 3339 time")
    period: str | None = Field(None, description="A duration, or R<n>/<duration>; empty: one tick")
    ttl: str | None = Field(None, description="A duration or an RFC 3339 time: no tick after it")
    data: Any = None
    overwrite: bool | None = Field(None, description="false: refuse to replace an existing reminder")
    failure_policy: dict[str, Any] | None = Field(None, description='{"constant": {...}} or {"drop": {}}')


class Reminder(BaseModel):
    actorID: str
    actorType: str
    data: Any = None
    dueTime: str
    period: str
    ttl: str | None = Field(None, description="When the reminder expires (RFC 3339)")


class TimerRequest(BaseModel):
    dueTime: str | None = None
    period: str | None = None
    ttl: str | None = None
    callback: str | None = None
    data: Any = None


class Timer(BaseModel):
    """A running timer as GET .../timers/{name} answers it: the fields it was given (unset ones
    left out), ``ttl`` as the time it ends."""

    actorType: str
    actorID: str
    dueTime: str | None = None
    period: str | None = None
    ttl: str | None = Field(None, description="When the timer ends (RFC 3339)")
    callback: str | None = None
    data: Any = None


class NamedTimer(Timer):
    name: str


class TimerList(BaseModel):
    timers: list[NamedTimer] = Field(description="The actor's running timers, by name")


class JobFailurePolicy(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"constant": {"interval": "5s", "maxRetries": 3}}}
    )

    constant: dict[str, Any] | None = Field(
        None, description='retried every "interval" (a duration), up to "maxRetries" (absent: no limit)'
    )
    drop: dict[str, Any] | None = Field(None, description="{}: a failed tick is not retried")


class JobRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"example": {"schedule": "@every 1m", "repeats": 10, "data": {"task": "backup"}}}
    )

    schedule: str | None = Field(
        None,
        description="@every <duration>, @yearly/@annually/@monthly/@weekly/@daily/@midnight/@hourly, "
        "or cron with six fields (seconds first), in UTC",
    )
    dueTime: str | None = Field(None, description="the first tick: a duration from now or an RFC 3339 time")
    repeats: int | None = Field(None, ge=0, description="how many ticks in all")
    ttl: str | None = Field(None, description="no tick after this: a duration from now or an RFC 3339 time")
    data: Any = Field(None, description="any JSON, sent as the body of POST /job/{name} on the app")
    failurePolicy: JobFailurePolicy | None = Field(None, description="default: constant, 1s, 3 retries")
    overwrite: bool = Field(False, description="replace a job of this name (else it is an error)")


class JobResponse(BaseModel):
    name: str
    schedule: str | None = None
    repeats: int | None = None
    dueTime: str | None = None
    ttl: str | None = None
    data: dict[str, Any] | None = Field(
        None,
        description='a protobuf Any: {"@type": "type.googleapis.com/google.protobuf.Value", "value": <data>}',
    )
    failurePolicy: JobFailurePolicy
