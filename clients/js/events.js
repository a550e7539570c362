/**
 * The hub's own events, as published on `_sys.agents` (`agentplex.v1.AgentEvent`) and
 * `_sys.tasks` (`agentplex.v1.TaskEvent`): protobuf payloads, decoded here into the canonical
 * JSON form. The tables follow proto/agentplex/v1/agent.proto and task.proto;
 * tests/integration/test_js_client.py checks them against the Python protobuf runtime.
 * @module
 */

import { fromBase64 } from "./encoding.js";
import { decode } from "./protobuf.js";

/** @param {string} prefix @param {string[]} names */
const enumOf = (prefix, names) => ({ enum: names.map((n) => prefix + n) });

const AGENT_KIND = enumOf("AGENT_KIND_", [
  "UNSPECIFIED", "CLAUDE_CODE", "CURSOR", "GITHUB_COPILOT", "GEMINI_CLI", "CODEX", "OPENCODE", "CUSTOM",
]);
const AGENT_STATUS = enumOf("AGENT_STATUS_", [
  "UNSPECIFIED", "ONLINE", "BUSY", "WAITING_INPUT", "DRAINING", "OFFLINE",
]);
const TRANSPORT = enumOf("TRANSPORT_", ["UNSPECIFIED", "GRPC", "WEBSOCKET", "REDIS"]);
const AGENT_EVENT_TYPE = enumOf("AGENT_EVENT_TYPE_", [
  "UNSPECIFIED", "SNAPSHOT", "JOINED", "STATUS_CHANGED", "LEFT",
]);
const TASK_STATE = enumOf("TASK_STATE_", [
  "UNSPECIFIED", "SUBMITTED", "ASSIGNED", "WORKING", "INPUT_REQUIRED",
  "COMPLETED", "FAILED", "CANCELED", "REJECTED",
]);
const TASK_EVENT_TYPE = enumOf("TASK_EVENT_TYPE_", [
  "UNSPECIFIED", "SNAPSHOT", "STATE_CHANGED", "PROGRESS", "ARTIFACT",
]);

/** @typedef {import("./protobuf.js").Schema} Schema */

/** @type {Schema} */
const AGENT_CARD = {
  1: ["id", "string"],
  2: ["name", "string"],
  3: ["kind", AGENT_KIND],
  4: ["capabilities", "string", true],
  5: ["maxConcurrentTasks", "uint32"],
  6: ["labels", "map"],
  7: ["version", "string"],
};

/** @type {Schema} */
const AGENT = {
  1: ["card", { message: AGENT_CARD }],
  2: ["status", AGENT_STATUS],
  3: ["activeTasks", "uint32"],
  4: ["transport", TRANSPORT],
  5: ["node", "string"],
  6: ["registeredAt", "timestamp"],
  7: ["lastSeen", "timestamp"],
  8: ["idleSince", "timestamp"],
  9: ["owner", "string"],
};

/** @type {Schema} */
const AGENT_EVENT = {
  1: ["type", AGENT_EVENT_TYPE],
  2: ["agent", { message: AGENT }],
  3: ["time", "timestamp"],
  4: ["reason", "string"],
};

/** @type {Schema} */
const PAYLOAD = { 1: ["contentType", "string"], 2: ["data", "bytes"] };

/** @type {Schema} */
const FILE_REF = {
  1: ["path", "string"],
  2: ["sha256", "string"],
  3: ["content", "bytes"],
  4: ["diff", "string"],
};

/** @type {Schema} */
const ARTIFACT = {
  1: ["id", "string"],
  2: ["name", "string"],
  3: ["contentType", "string"],
  4: ["data", "bytes"],
  5: ["sha256", "string"],
  6: ["metadata", "map"],
  7: ["chunkIndex", "uint32"],
  8: ["lastChunk", "bool"],
  9: ["file", { message: FILE_REF }],
};

/** @type {Schema} */
const PRIOR_RESULT = {
  1: ["taskId", "string"],
  2: ["agentId", "string"],
  3: ["agentKind", AGENT_KIND],
  4: ["result", { message: PAYLOAD }],
  5: ["artifacts", { message: ARTIFACT }, true],
  6: ["summary", "string"],
};

/** @type {Schema} */
const CONTEXT_PACKAGE = {
  1: ["summary", "string"],
  2: ["decisions", "string", true],
  3: ["files", { message: FILE_REF }, true],
  4: ["priorResults", { message: PRIOR_RESULT }, true],
  5: ["gitRef", "string"],
  6: ["metadata", "map"],
};

/** @type {Schema} */
const TASK = {
  1: ["id", "string"],
  2: ["idempotencyKey", "string"],
  3: ["requiredCapabilities", "string", true],
  4: ["preferredKinds", AGENT_KIND, true],
  5: ["targetAgentId", "string"],
  6: ["priority", "int32"],
  7: ["deadline", "timestamp"],
  8: ["maxAttempts", "uint32"],
  9: ["input", { message: PAYLOAD }],
  10: ["context", { message: CONTEXT_PACKAGE }],
  11: ["parentTaskId", "string"],
  12: ["labels", "map"],
  20: ["state", TASK_STATE],
  21: ["assignedAgentId", "string"],
  22: ["attempt", "uint32"],
  23: ["statusMessage", "string"],
  24: ["artifacts", { message: ARTIFACT }, true],
  25: ["result", { message: PAYLOAD }],
  26: ["error", { message: { 1: ["code", "string"], 2: ["message", "string"] } }],
  27: ["submitter", "string"],
  28: ["createdAt", "timestamp"],
  29: ["updatedAt", "timestamp"],
  30: ["completedAt", "timestamp"],
  31: ["inputPrompt", "string"],
};

/** @type {Schema} */
const TASK_EVENT = {
  1: ["number", "uint64"],
  2: ["type", TASK_EVENT_TYPE],
  3: ["task", { message: TASK }],
  4: ["message", "string"],
  5: ["percent", "float"],
  6: ["artifact", { message: ARTIFACT }],
  7: ["time", "timestamp"],
};

/** @param {Uint8Array | string} payload bytes, or base64 as in an envelope's JSON */
const bytesOf = (payload) => (typeof payload === "string" ? fromBase64(payload) : payload);

/**
 * An `agentplex.v1.AgentEvent` (a `_sys.agents` payload) in canonical JSON form.
 * @param {Uint8Array | string} payload
 */
export const decodeAgentEvent = (payload) => decode(AGENT_EVENT, bytesOf(payload));

/**
 * An `agentplex.v1.TaskEvent` (a `_sys.tasks` payload) in canonical JSON form.
 * @param {Uint8Array | string} payload
 */
export const decodeTaskEvent = (payload) => decode(TASK_EVENT, bytesOf(payload));
