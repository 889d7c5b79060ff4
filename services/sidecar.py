"""Every building block's service, as the lifespan builds them once at start-up: what the
transports (the HTTP routes, later gRPC) call."""

from __future__ import annotations

from dataclasses import dataclass

from services.actors import ActorRuntime
from services.actuator import ActuatorService
from services.bindings import BindingsService
from services.configuration import ConfigurationService
from services.dashboard import DashboardService
from services.files import FileService
from services.invocation import InvocationService
from services.jobs import JobsService
from services.lock import LockService
from services.metadata import MetadataService
from services.pubsub.publisher import PubSubService
from services.pubsub.streaming import StreamingSubscriptions
from services.scheduler.base import Scheduler
from services.secrets import SecretsService
from services.sequencer import SequencerService
from services.state import StateService
from services.wasm import WasmService


@dataclass(frozen=True, slots=True)
class Services:
    state: StateService
    pubsub: PubSubService
    invocation: InvocationService
    lock: LockService
    sequencer: SequencerService
    configuration: ConfigurationService
    secrets: SecretsService
    metadata: MetadataService
    files: FileService
    bindings: BindingsService
    wasm: WasmService
    actuator: ActuatorService
    dashboard: DashboardService
    scheduler: Scheduler
    """Jobs and actor reminders, durable, fired once per tick across the app id's sidecars."""
    jobs: JobsService
    streams: StreamingSubscriptions
    """Streaming subscriptions (``SubscribeTopicEventsAlpha1``): the app's own, no app port needed."""
    actors: ActorRuntime | None = None
    """None until the runtime has built it (and in sidecars assembled without one)."""
