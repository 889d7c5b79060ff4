// Calls actor methods with the Dapr JS SDK's ActorProxyBuilder and prints each outcome as one JSON
// line. Usage: node actor_calls.mjs <host> <port> '<json: [{"id": "cart-1", "method": "addItem", "args": [...]}, ...]>'
import { ActorId, ActorProxyBuilder, CommunicationProtocolEnum, DaprClient } from "@dapr/dapr";

class CartActor {}

const [host, port, plan] = process.argv.slice(2);
const client = new DaprClient({
  daprHost: host,
  daprPort: port,
  communicationProtocol: CommunicationProtocolEnum.HTTP,
  logger: { level: 0 },
});
const builder = new ActorProxyBuilder(CartActor, client);
const outcomes = [];
for (const { id, method, args } of JSON.parse(plan)) {
  try {
    const result = await builder.build(new ActorId(id))[method](...args);
    outcomes.push({ method, ok: true, result: result === undefined ? null : result });
  } catch (error) {
    outcomes.push({ method, ok: false, error: String(error && error.message ? error.message : error) });
  }
}
process.stdout.write(JSON.stringify(outcomes) + "\n");
process.exit(0);
