/**
 * The hub's dashboard: agents, tasks and channel traffic, live, through the JavaScript client
 * over the WebSocket edge. Agents and tasks are rebuilt from the hub's own channels, replayed
 * from the start of their history (`_sys.agents`, `_sys.tasks`), then followed live; traffic is
 * a pattern subscription (`?traffic=PATTERN`, default every channel this session may read).
 */

import { connect, decodeAgentEvent, decodeTaskEvent } from "/js/agentplex.js";

const params = new URLSearchParams(location.search);
const TRAFFIC = params.get("traffic") || "*";
const MAX_TASKS = 200;
const MAX_MESSAGES = 25;
const RATE_WINDOW_MS = 5000;
const ACTIVE = new Set(["ASSIGNED", "WORKING", "INPUT_REQUIRED"]);

/** @type {Map<string, Record<string, any>>} agent id → `agentplex.v1.Agent` (JSON) */
const agents = new Map();
/** @type {Map<string, Record<string, any>>} task id → `agentplex.v1.Task` (JSON), last updated last */
const tasks = new Map();
/** @type {Map<string, {total: number, times: number[], last: string}>} */
const channels = new Map();
/** @type {Array<{time: number, channel: string, seq: string, sender: string, preview: string}>} */
const messages = [];
let trafficLive = false;

/** "AGENT_STATUS_ONLINE" → "ONLINE" */
const strip = (/** @type {string | undefined} */ name, /** @type {string} */ prefix) =>
  (name ?? "").replace(prefix, "");

/** @param {number} ms */
function age(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/**
 * A table row; each cell carries `data-field` and `data-value` (for styling and tests).
 * @param {Record<string, string>} cells field → text
 * @param {Record<string, string>} data the row's data attributes
 */
function row(cells, data) {
  const tr = document.createElement("tr");
  Object.assign(tr.dataset, data);
  for (const [field, text] of Object.entries(cells)) {
    const td = tr.insertCell();
    td.textContent = text;
    td.dataset.field = field;
    td.dataset.value = text;
    if (field === "payload" || field === "capabilities") td.className = "wrap";
  }
  return tr;
}

/** @param {string} id @param {HTMLTableRowElement[]} rows */
function fill(id, rows) {
  /** @type {HTMLTableElement} */ (document.getElementById(id)).tBodies[0].replaceChildren(...rows);
}

/** @param {string} id @param {string} text */
const setText = (id, text) => {
  /** @type {HTMLElement} */ (document.getElementById(id)).textContent = text;
};

function renderAgents() {
  const load = new Map();
  for (const task of tasks.values()) {
    if (ACTIVE.has(strip(task.state, "TASK_STATE_")) && task.assignedAgentId) {
      load.set(task.assignedAgentId, (load.get(task.assignedAgentId) ?? 0) + 1);
    }
  }
  const rows = [...agents.values()]
    .sort((a, b) => a.card.id.localeCompare(b.card.id))
    .map(({ card, status, transport, node }) =>
      row(
        {
          id: card.id,
          kind: strip(card.kind, "AGENT_KIND_").toLowerCase(),
          capabilities: (card.capabilities ?? []).join(", "),
          status: strip(status, "AGENT_STATUS_"),
          load: `${load.get(card.id) ?? 0}/${card.maxConcurrentTasks ?? 0}`,
          transport: strip(transport, "TRANSPORT_").toLowerCase(),
          node: node ?? "",
        },
        { agent: card.id },
      ),
    );
  fill("agents", rows);
  setText("agent-count", String(agents.size));
}

function renderTasks() {
  const now = Date.now();
  const rows = [...tasks.values()]
    .reverse()
    .slice(0, MAX_TASKS)
    .map((task) =>
      row(
        {
          id: task.id,
          state: strip(task.state, "TASK_STATE_"),
          agent: task.assignedAgentId ?? "",
          attempt: String(task.attempt ?? 0),
          age: task.createdAt ? age(now - Date.parse(task.createdAt)) : "",
          requires: (task.requiredCapabilities ?? []).join(", "),
          status: task.error?.message ?? task.statusMessage ?? "",
        },
        { task: task.id },
      ),
    );
  fill("tasks", rows);
  setText("task-count", String(tasks.size));
}

function renderTraffic() {
  const now = Date.now();
  const rows = [...channels.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([channel, stats]) => {
      stats.times = stats.times.filter((t) => now - t < RATE_WINDOW_MS);
      const rate = (stats.times.length / (RATE_WINDOW_MS / 1000)).toFixed(1);
      return row({ channel, rate, total: String(stats.total), last: stats.last }, { channel });
    });
  fill("channels", rows);
  fill(
    "messages",
    messages.map((m) =>
      row({
        time: new Date(m.time).toLocaleTimeString(),
        channel: m.channel,
        seq: m.seq,
        sender: m.sender,
        payload: m.preview,
      }, {}),
    ),
  );
}

let scheduled = false;
/** Render once per frame, whatever changed. */
function changed() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    renderAgents();
    renderTasks();
    renderTraffic();
  });
}

/** @param {import("/js/agentplex.js").Message} message */
function onAgentEvent(message) {
  const event = decodeAgentEvent(message.data);
  const id = event.agent?.card?.id;
  if (!id) return;
  if (event.type === "AGENT_EVENT_TYPE_LEFT") agents.delete(id);
  else agents.set(id, event.agent);
  changed();
}

/** @param {import("/js/agentplex.js").Message} message */
function onTaskEvent(message) {
  const { task } = decodeTaskEvent(message.data);
  if (!task?.id) return;
  tasks.delete(task.id); // re-inserted last: the map stays in order of last change
  tasks.set(task.id, task);
  if (tasks.size > MAX_TASKS * 2) tasks.delete(/** @type {string} */ (tasks.keys().next().value));
  changed();
}

/** @param {import("/js/agentplex.js").Message} message */
function preview(message) {
  const type = message.envelope.contentType ?? "";
  if (type.startsWith("text/") || type.includes("json") || (!type && message.data.length < 200)) {
    const text = message.text;
    return text.length > 120 ? `${text.slice(0, 120)}…` : text;
  }
  const kind = message.envelope.headers?.type ?? type;
  return `[${kind || "bytes"}, ${message.data.length} B]`;
}

/** @param {import("/js/agentplex.js").Message} message */
function onTraffic(message) {
  if (!trafficLive) return; // the replay of the system channels is not traffic
  const now = Date.now();
  const stats = channels.get(message.channel) ?? { total: 0, times: [], last: "" };
  stats.total += 1;
  stats.times.push(now);
  stats.last = preview(message);
  channels.set(message.channel, stats);
  const { channel, envelope } = message;
  const seq = envelope.position?.seq ?? "";
  messages.unshift({ time: now, channel, seq, sender: envelope.sender ?? "", preview: stats.last });
  messages.length = Math.min(messages.length, MAX_MESSAGES);
  changed();
}

/**
 * @param {import("/js/agentplex.js").SessionState} state
 * @param {import("/js/agentplex.js").Session} session
 */
function onState(state, session) {
  const element = /** @type {HTMLElement} */ (document.getElementById("connection"));
  element.dataset.state = state;
  element.textContent = state;
  setText("node", session.welcome.node ? `node ${session.welcome.node}` : "");
  if (state === "connected" && session.reconnects > 0 && !session.welcome.resumed) {
    location.reload(); // a new session (the hub restarted or forgot us): start from history
  }
}

async function main() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const session = await connect(`${scheme}//${location.host}/v1/connect`, {
    token: params.get("token") ?? undefined,
    onState,
  });
  setText("traffic-pattern", TRAFFIC);
  const replays = [
    await session.subscribe("_sys.agents", { since: { "_sys.agents": 0 }, onMessage: onAgentEvent }),
    await session.subscribe("_sys.tasks", { since: { "_sys.tasks": 0 }, onMessage: onTaskEvent }),
  ];
  // History is bounded: when its start is gone, long-quiet agents and old tasks are missing.
  const trimmed = replays.flatMap((sub) => sub.states).filter((state) => !state.recovered);
  const names = trimmed.map((state) => state.channel).join(", ");
  setText("history", trimmed.length ? `incomplete history: ${names}` : "");
  await session.subscribe(TRAFFIC, { onMessage: onTraffic });
  trafficLive = true;
  setInterval(changed, 1000); // ages and rates move on
  changed();
}

main().catch((error) => {
  const element = /** @type {HTMLElement} */ (document.getElementById("connection"));
  element.dataset.state = "closed";
  element.textContent = `failed: ${error.message}`;
});
