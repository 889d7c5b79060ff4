// An actor app written with the Dapr JS SDK (DaprServer over HTTP, AbstractActor), as its
// documentation shows it. What the actors live through (activations, deactivations, reminders and
// timers received) is appended, one JSON line each, to the events file, for the test to read.
// Reminder and timer state are strings, as in the SDK's examples: the SDK hands the app
// String(data), so an object would arrive as "[object Object]" whatever the sidecar sends.
// Usage: node actor_app.mjs <dapr host> <dapr port> <app port> <events file>
import { appendFileSync } from "node:fs";
import { AbstractActor, CommunicationProtocolEnum, DaprServer, Temporal } from "@dapr/dapr";

const [daprHost, daprPort, appPort, eventsFile] = process.argv.slice(2);
const record = (event) => appendFileSync(eventsFile, JSON.stringify(event) + "\n");

class CartActor extends AbstractActor {
  async onActivate() {
    record({ event: "activate", id: this.getActorId().getId() });
  }

  async onDeactivate() {
    record({ event: "deactivate", id: this.getActorId().getId() });
  }

  async addItem(item) {
    const [, items] = await this.getStateManager().tryGetState("items");
    const next = [...(items ?? []), item];
    await this.getStateManager().setState("items", next);
    return next.length;
  }

  async getItems() {
    const [, items] = await this.getStateManager().tryGetState("items");
    return items ?? [];
  }

  async startReminder(note) {
    await this.registerActorReminder(
      "ping",
      Temporal.Duration.from({ seconds: 1 }),
      Temporal.Duration.from({ seconds: 1 }),
      undefined,
      note,
    );
  }

  async receiveReminder(data) {
    record({ event: "reminder", id: this.getActorId().getId(), data });
    await this.unregisterActorReminder("ping");
  }

  async startTimer(note) {
    await this.registerActorTimer(
      "tick",
      "onTick",
      Temporal.Duration.from({ milliseconds: 500 }),
      Temporal.Duration.from({ seconds: 1 }),
      undefined,
      note,
    );
  }

  async stopTimer() {
    await this.unregisterActorTimer("tick");
  }

  async onTick(state) {
    record({ event: "timer", id: this.getActorId().getId(), state });
  }
}

const server = new DaprServer({
  serverHost: "127.0.0.1",
  serverPort: appPort,
  communicationProtocol: CommunicationProtocolEnum.HTTP,
  clientOptions: {
    daprHost,
    daprPort,
    communicationProtocol: CommunicationProtocolEnum.HTTP,
    actor: { actorIdleTimeout: "2s", actorScanInterval: "1s" },
  },
  logger: { level: 1 },
});
await server.actor.init();
server.actor.registerActor(CartActor);
await server.start();
record({ event: "started" });
