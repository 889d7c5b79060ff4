// Runs Dapr JS SDK client calls against a sidecar and prints each outcome as one JSON line.
// Usage: node calls.mjs <host> <port> '<json: [{"api": "secret.get", "args": [...]}, ...]>'
import { DaprClient, CommunicationProtocolEnum } from "@dapr/dapr";

const [host, port, plan] = process.argv.slice(2);
const client = new DaprClient({
  daprHost: host,
  daprPort: port,
  communicationProtocol: CommunicationProtocolEnum.HTTP,
  logger: { level: 0 },
});
const outcomes = [];
for (const { api, args } of JSON.parse(plan)) {
  const [group, method] = api.split(".");
  try {
    const result = await client[group][method](...args);
    outcomes.push({ api, ok: true, result: result === undefined ? null : result });
  } catch (error) {
    outcomes.push({ api, ok: false, error: String(error && error.message ? error.message : error) });
  }
}
process.stdout.write(JSON.stringify(outcomes) + "\n");
process.exit(0);
