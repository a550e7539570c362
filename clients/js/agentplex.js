/**
 * agentplex for browsers and Node 20+: the hub's session protocol over its WebSocket edge.
 *
 *     import { connect } from "./agentplex.js";
 *     const session = await connect("ws://127.0.0.1:8765/v1/connect", { card: { id: "a1" } });
 *
 * See README.md.
 * @module
 */

export { content, HubError } from "./encoding.js";
export { decodeAgentEvent, decodeTaskEvent } from "./events.js";
export { globMatch, isPattern } from "./glob.js";
export { connect, envelope, Session } from "./session.js";
export { Message, Subscription } from "./subscription.js";
export { TaskContext, TaskFailed, TaskHandle, TaskRejected } from "./tasks.js";
