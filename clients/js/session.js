/**
 * A live session over the WebSocket edge: register an agent, publish, subscribe with replay and
 * acks, work on tasks, and carry on across dropped connections. The frames are the hub's session
 * protocol (`agentplex.v1.ConnectRequest` / `ConnectResponse`) in canonical JSON, one per
 * WebSocket message (subprotocol `agentplex.v1.json`).
 *
 * A dropped connection is reopened with the resume token and the last positions seen: within the
 * hub's grace period the hub resends exactly what was missed; after it, the session registers
 * again and subscribes again from those positions. Deliveries already seen are dropped, so a
 * subscription sees no gap and no duplicate; such a redelivery is acknowledged only when its
 * message was acknowledged here already (the ack was lost), never while it waits to be handled.
 * @module
 */

import { content, HubError, payloadJson, randomId, toBase64 } from "./encoding.js";
import { covers, isPattern } from "./glob.js";
import { channelPosition, Positions } from "./positions.js";
import { Message, Subscription } from "./subscription.js";
import { TaskContext, TaskHandle } from "./tasks.js";

const SUBPROTOCOL = "agentplex.v1.json";
/** Refusals that a reconnect would only repeat. */
const FATAL = new Set([
  "INVALID_ARGUMENT",
  "UNAUTHENTICATED",
  "PERMISSION_DENIED",
  "ALREADY_EXISTS",
  "UNIMPLEMENTED",
]);
const OPEN = 1; // WebSocket.OPEN
/** Silence (in heartbeat intervals) after which the connection counts as dead. */
const SILENT_INTERVALS = 3;

/**
 * @typedef {object} AgentCard `agentplex.v1.AgentCard` in canonical JSON; `kind` may be short
 *   ("custom", "claude_code") or the full enum name
 * @property {string} [id] empty: the hub assigns one
 * @property {string} [name]
 * @property {string} [kind]
 * @property {string[]} [capabilities]
 * @property {number} [maxConcurrentTasks]
 * @property {Record<string, string>} [labels]
 * @property {string} [version]
 */

/**
 * @typedef {"connected" | "reconnecting" | "closed"} SessionState
 */

/**
 * @typedef {object} SessionOptions
 * @property {AgentCard} [card] register an agent (else a plain client session)
 * @property {string} [token] bearer token, sent in the hello frame
 * @property {typeof WebSocket} [WebSocket] the constructor to use (default: the global one)
 * @property {boolean} [reconnect] reconnect and resume after a drop (default true)
 * @property {number} [maxBackoffMs] longest wait between reconnect attempts (default 2000)
 * @property {number} [connectTimeoutMs] how long to wait for the welcome (default 10000)
 * @property {(error: unknown) => void} [onError] failures of handlers (default console.error)
 * @property {(state: SessionState, session: Session) => void} [onState] connection changes
 */

/**
 * @typedef {object} EnvelopeOptions
 * @property {string} [id] doubles as the idempotency key (default: a random id)
 * @property {string} [contentType] default: guessed from the value
 * @property {Record<string, string>} [headers]
 * @property {string} [correlationId]
 * @property {string} [replyTo]
 */

/**
 * An envelope for `publishBatch`.
 * @param {string} channel
 * @param {import("./encoding.js").ContentLike} value text, bytes, `{contentType, data}` or JSON
 * @param {EnvelopeOptions} [options]
 */
export function envelope(channel, value, { id, contentType, ...fields } = {}) {
  const body = content(value, contentType);
  return {
    id: id || randomId(),
    channel,
    contentType: body.contentType,
    payload: toBase64(body.data),
    ...fields,
  };
}

/**
 * "busy" or "AGENT_STATUS_BUSY" → "AGENT_STATUS_BUSY".
 * @param {string} prefix
 * @param {string} value
 */
const enumName = (prefix, value) =>
  value.startsWith(prefix) ? value : prefix + value.toUpperCase();

/** @param {{channel: string, position?: object}} envelope */
const positionOf = ({ channel, position }) => ({ channel, position: position ?? {} });
/** @param {{channel: string, position?: {seq?: string, epoch?: string}}} envelope */
const keyOf = ({ channel, position }) =>
  `${channel}\n${position?.seq ?? 0}\n${position?.epoch ?? ""}`;

/** @param {{taskId?: string, task?: {id: string}, attempt?: number}} frame */
const taskKey = (frame) => `${frame.taskId ?? frame.task?.id}#${frame.attempt ?? 0}`;

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Open a session and say hello.
 * @param {string} url `ws://HOST:PORT/v1/connect`
 * @param {SessionOptions} [options]
 */
export async function connect(url, options = {}) {
  const session = new Session(url, options);
  await session.open();
  return session;
}

/**
 * Open a WebSocket, send `hello` and wait for the hub's first frame (a welcome or an error).
 * @param {WebSocket} ws
 * @param {object} hello
 * @param {number} timeoutMs
 * @returns {Promise<any>}
 */
function handshake(ws, hello, timeoutMs) {
  return new Promise((resolve, reject) => {
    /** @param {string} why */
    const fail = (why) => {
      clearTimeout(timer);
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      ws.close();
      reject(new HubError("UNAVAILABLE", `no welcome from the hub: ${why}`));
    };
    const timer = setTimeout(() => fail(`none within ${timeoutMs} ms`), timeoutMs);
    ws.onopen = () => ws.send(JSON.stringify({ ref: "hello", hello }));
    ws.onmessage = (event) => {
      clearTimeout(timer);
      resolve(JSON.parse(String(event.data)));
    };
    // Node 20's WebSocket reports a refused connection with an error and no close event.
    ws.onerror = () => fail("connection failed");
    ws.onclose = (event) => fail(`closed (${event.code} ${event.reason})`);
  });
}

export class Session {
  /**
   * @param {string} url
   * @param {SessionOptions} [options]
   */
  constructor(url, options = {}) {
    const Socket = options.WebSocket ?? globalThis.WebSocket;
    if (!Socket) {
      throw new TypeError("no WebSocket: pass options.WebSocket (Node 20: --experimental-websocket)");
    }
    this.url = url;
    const card = options.card;
    this.card = card && { ...card, kind: enumName("AGENT_KIND_", card.kind ?? "custom") };
    this.reconnect = options.reconnect ?? true;
    this.maxBackoffMs = options.maxBackoffMs ?? 2000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    /** The hub's welcome (camelCase `agentplex.v1.Welcome`). */
    this.welcome = /** @type {Record<string, any>} */ ({});
    this.agentId = "";
    this.positions = new Positions();
    this.closed = false;
    /** Why the session ended, once it has. */
    this.failure = /** @type {Error | null} */ (null);
    this.reconnects = 0;
    this.#Socket = Socket;
    this.#token = options.token ?? "";
    this.#onError = options.onError ?? ((error) => console.error("agentplex:", error));
    this.#onState = options.onState ?? (() => {});
  }

  /** @type {typeof WebSocket} */ #Socket;
  /** @type {string} */ #token;
  /** @type {(error: unknown) => void} */ #onError;
  /** @type {(state: SessionState, session: Session) => void} */ #onState;
  /** @type {WebSocket | null} */ #ws = null;
  #refs = 0;
  /** Frames awaiting a receipt (as sent), sent again after a reconnect. */
  /** @type {Map<string, {text: string, resolve: (f: any) => void, reject: (e: Error) => void}>} */
  #waiting = new Map();
  /** @type {Subscription[]} */ #subs = [];
  /** @type {((task: TaskContext) => unknown) | null} */ #handler = null;
  /** @type {Map<string, TaskContext>} */ #running = new Map();
  /** @type {Map<string, (envelope: any) => void>} */ #replies = new Map();
  /**
   * Deliveries handed to a subscription that acknowledges, not acknowledged yet: a redelivery
   * of one is dropped unacknowledged, or a crash before it is handled would lose it.
   * @type {Set<string>}
   */
  #unacked = new Set();
  /** @type {ReturnType<typeof setInterval> | undefined} */ #heartbeat;
  #lastHeard = 0;
  /** @type {string | undefined} */ #status;
  /** @type {HubError | null} */ #fatal = null;
  #leaving = false;

  // Lifecycle ------------------------------------------------------------------------------

  /** Connect and say hello (`connect()` does this). */
  async open() {
    await this.#open(false);
    return this.welcome;
  }

  /** Leave for good: the hub deregisters the agent and forgets the session. */
  async close(reason = "goodbye") {
    if (this.closed) return;
    this.#leaving = true; // the hub ends the connection after the goodbye: no reconnect
    if (this.#ws) {
      /** @type {ReturnType<typeof setTimeout> | undefined} */
      let timer;
      const timeout = new Promise((resolve) => (timer = setTimeout(resolve, 2000)));
      await Promise.race([this.#request({ goodbye: { reason } }).catch(() => {}), timeout]);
      clearTimeout(timer);
    }
    this.#shutdown(new HubError("CANCELLED", `session closed: ${reason}`));
  }

  /** Cut the connection without a goodbye (as a network failure would); reconnect takes over. */
  drop() {
    const ws = this.#ws;
    if (ws) {
      ws.close(4000, "dropped by the client");
      this.#lost(ws, "dropped by the client");
    }
  }

  /** @param {boolean} resume */
  async #open(resume) {
    const ws = new this.#Socket(this.url, SUBPROTOCOL);
    /** @type {Record<string, any>} */
    const hello = { positions: this.positions.list() };
    if (this.card) hello.card = this.agentId ? { ...this.card, id: this.agentId } : this.card;
    if (resume && this.welcome.resumeToken) hello.resumeToken = this.welcome.resumeToken;
    if (this.#token) hello.token = this.#token;
    const first = await handshake(ws, hello, this.connectTimeoutMs);
    if (first.error || this.closed) {
      ws.close();
      throw first.error ? HubError.from(first.error) : this.failure;
    }
    this.#ws = ws;
    this.welcome = first.welcome;
    this.agentId = this.welcome.agentId ?? "";
    ws.onmessage = (event) => this.#receive(JSON.parse(String(event.data)));
    ws.onclose = (event) => this.#lost(ws, `closed (${event.code} ${event.reason})`);
    ws.onerror = () => {
      ws.onerror = null;
      ws.close();
      this.#lost(ws, "connection error");
    };
    this.#startHeartbeats();
    if (this.agentId && !this.#subs.some((sub) => sub.channels[0] === this.#inboxName())) {
      // The hub subscribes an agent to its inbox at once; receive from the first frame.
      this.#subs.push(this.#subscription([this.#inboxName()], { ack: true }));
    }
    for (const [ref, { text, reject }] of this.#waiting) {
      const tooBig = this.#oversized(text); // sent before a welcome gave the limit
      if (tooBig) {
        this.#waiting.delete(ref);
        reject(tooBig);
      } else this.#send(text);
    }
    if (resume && !this.welcome.resumed) this.#resubscribe();
    this.#onState("connected", this);
  }

  /** A new session after a resume failed: ask again for every subscription, from the positions. */
  #resubscribe() {
    for (const sub of this.#subs) {
      const since = this.positions.list().filter((p) => sub.wants(p.channel));
      this.#request({ subscribe: { channels: sub.channels, since, ack: sub.ack } }).catch(this.#onError);
    }
  }

  /**
   * @param {WebSocket} ws
   * @param {string} reason
   */
  #lost(ws, reason) {
    if (ws !== this.#ws) return;
    this.#ws = null;
    clearInterval(this.#heartbeat);
    if (this.closed || this.#leaving) return;
    const fatal = this.#fatal;
    this.#fatal = null;
    if (!this.reconnect || (fatal && FATAL.has(fatal.code))) {
      this.#shutdown(fatal ?? new HubError("UNAVAILABLE", reason));
      return;
    }
    this.#onState("reconnecting", this);
    this.#reconnect();
  }

  async #reconnect() {
    let backoff = 50;
    while (!this.closed) {
      await sleep(backoff);
      backoff = Math.min(backoff * 2, this.maxBackoffMs);
      try {
        await this.#open(true);
        this.reconnects++;
        return;
      } catch (error) {
        if (error instanceof HubError && FATAL.has(error.code)) {
          this.#shutdown(error);
          return;
        }
      }
    }
  }

  /** @param {Error} failure */
  #shutdown(failure) {
    if (this.closed) return;
    this.closed = true;
    this.failure = failure;
    clearInterval(this.#heartbeat);
    this.#ws?.close(1000, "goodbye");
    this.#ws = null;
    for (const { reject } of this.#waiting.values()) reject(failure);
    this.#waiting.clear();
    for (const sub of this.#subs) sub.end();
    for (const task of this.#running.values()) task.cancel(failure.message);
    this.#onState("closed", this);
  }

  #startHeartbeats() {
    clearInterval(this.#heartbeat);
    const interval = Math.max(this.welcome.heartbeatIntervalMs ?? 10_000, 50);
    this.#lastHeard = Date.now();
    this.#heartbeat = setInterval(() => {
      if (Date.now() - this.#lastHeard > SILENT_INTERVALS * interval) {
        this.drop(); // each heartbeat gets a receipt: this much silence is a dead connection
        return;
      }
      const heartbeat = this.#status ? { status: this.#status } : {};
      this.#write({ ref: "heartbeat", heartbeat });
    }, interval);
  }

  // Frames ---------------------------------------------------------------------------------

  /** @param {Record<string, any>} frame a `ConnectResponse` */
  #receive(frame) {
    this.#lastHeard = Date.now();
    if (frame.deliveries) {
      this.#dispatch(frame.deliveries.deliveries ?? []);
    } else if (frame.taskAssignment) {
      this.#assigned(frame.taskAssignment);
    } else if (frame.taskCancel) {
      this.#running.get(taskKey(frame.taskCancel))?.cancel(frame.taskCancel.reason ?? "");
    } else if (frame.taskInput) {
      this.#running.get(taskKey(frame.taskInput))?.give(frame.taskInput.input);
    } else if (frame.drain) {
      // The node is leaving and hands the tasks held here to other agents: stop them. It
      // closes the connection next, and the session reconnects as after any drop.
      for (const task of this.#running.values()) task.cancel(frame.drain.reason ?? "draining");
    } else if (frame.ping) {
      this.#write({ heartbeat: {} });
    } else if (frame.error?.fatal) {
      this.#fatal = HubError.from(frame.error); // the hub closes the connection next
    }
    if (frame.receipt?.subscriptions && !frame.ref) this.#began(frame.receipt.subscriptions); // the inbox's, at hello
    const pending = frame.ref ? this.#waiting.get(frame.ref) : undefined;
    if (pending) {
      this.#waiting.delete(frame.ref);
      if (frame.error) pending.reject(HubError.from(frame.error));
      else pending.resolve(frame);
    }
  }

  /**
   * Where subscriptions to channels named outright began (their receipt's positions): a
   * reconnect resumes a channel that was quiet until then from there.
   * @param {Array<{channel: string, position?: import("./positions.js").StreamPosition}>} states
   */
  #began(states) {
    for (const { channel, position } of states) {
      if (!isPattern(channel)) this.positions.begin(channel, position);
    }
  }

  /** @param {Array<{envelope: any, attempt?: number}>} deliveries */
  #dispatch(deliveries) {
    const acks = [];
    for (const { envelope, attempt = 1 } of deliveries) {
      const channel = envelope.channel;
      const fresh = this.positions.advance(channel, envelope.position);
      const wanted = this.#subs.filter((sub) => sub.wants(channel));
      const reply = envelope.correlationId && this.#replies.get(envelope.correlationId);
      const acked = wanted.some((sub) => sub.ack);
      if (!fresh || (reply && channel === this.#inboxName())) {
        if (reply && fresh) reply(envelope); // the answer to request(): consumed here
        if (acked && !this.#unacked.has(keyOf(envelope))) acks.push(positionOf(envelope));
        continue;
      }
      if (acked) this.#unacked.add(keyOf(envelope));
      for (const sub of wanted) sub.push(new Message(envelope, attempt, this.#ack));
    }
    if (acks.length) this.#write({ ack: { positions: acks } });
  }

  /** @param {{channel: string, position?: object}} envelope */
  #ack = (envelope) => {
    this.#unacked.delete(keyOf(envelope));
    this.#write({ ack: { positions: [positionOf(envelope)] } });
  };

  /**
   * Best effort: on a dead connection the frame is dropped. Acks and heartbeats are safe to
   * lose (the hub redelivers; the reconnect says hello); frames awaiting receipts are resent.
   * @param {object} frame
   */
  #write(frame) {
    this.#send(JSON.stringify(frame));
  }

  /** @param {string} text a frame in JSON */
  #send(text) {
    if (this.#ws?.readyState === OPEN) this.#ws.send(text);
  }

  /**
   * The refusal of a frame larger than the hub takes (its welcome says how large): sent, it
   * would end the connection, and be sent again after every reconnect.
   * @param {string} text a frame in JSON
   * @returns {HubError | null}
   */
  #oversized(text) {
    const limit = Number(this.welcome.maxFrameBytes ?? 0);
    if (!limit || text.length * 3 <= limit) return null; // UTF-8 takes at most 3 bytes a unit
    const size = new TextEncoder().encode(text).length;
    if (size <= limit) return null;
    return new HubError(
      "RESOURCE_EXHAUSTED",
      `the frame is ${size} bytes, over the hub's limit of ${limit} (server.max_message_bytes): ` +
        "send fewer or smaller envelopes at a time",
    );
  }

  /**
   * Send a frame and wait for its receipt; an error frame rejects with a HubError.
   * @param {object} frame
   * @returns {Promise<Record<string, any>>}
   */
  #request(frame) {
    if (this.failure) return Promise.reject(this.failure);
    const ref = `r${++this.#refs}`;
    const text = JSON.stringify({ ref, ...frame });
    const tooBig = this.#oversized(text);
    if (tooBig) return Promise.reject(tooBig);
    return new Promise((resolve, reject) => {
      this.#waiting.set(ref, { text, resolve, reject });
      this.#send(text); // after a reconnect it is sent again
    });
  }

  // Submitting tasks -----------------------------------------------------------------------

  /**
   * Submit a task over the session (the `submitTask` frame) and get a handle that follows it.
   * It carries an idempotency key (random unless given), so a resend after a reconnect finds
   * the same task instead of making another.
   * @param {import("./encoding.js").ContentLike} input
   * @param {object} [options]
   * @param {string[]} [options.require] capabilities the agent must hold, all of them
   * @param {string} [options.agent] the id of the agent that must do it
   * @param {number} [options.priority] higher goes first
   * @param {number} [options.maxAttempts] 0: the hub's default
   * @param {string} [options.idempotencyKey]
   * @returns {Promise<TaskHandle>}
   */
  async submit(
    input,
    { require = [], agent = "", priority = 0, maxAttempts = 0, idempotencyKey = randomId() } = {},
  ) {
    const events = await this.subscribe("_sys.tasks"); // first, so no event is missed
    try {
      const task = {
        requiredCapabilities: require,
        targetAgentId: agent,
        priority,
        maxAttempts,
        idempotencyKey,
        input: payloadJson(input),
      };
      const response = await this.#request({ submitTask: { task } });
      return new TaskHandle(response.receipt.task, events);
    } catch (error) {
      await events.unsubscribe();
      throw error;
    }
  }

  // Messaging ------------------------------------------------------------------------------

  /**
   * Publish one envelope; safe across reconnects (its id makes a resend a duplicate).
   * @param {string} channel
   * @param {import("./encoding.js").ContentLike} value
   * @param {EnvelopeOptions} [options]
   * @returns {Promise<Record<string, any>>} the `PublishResult`: id, channel, position, sha256
   */
  async publish(channel, value, options = {}) {
    const [result] = await this.publishBatch([envelope(channel, value, options)]);
    return result;
  }

  /**
   * @param {Array<ReturnType<typeof envelope>>} envelopes
   * @returns {Promise<Array<Record<string, any>>>}
   */
  async publishBatch(envelopes) {
    const response = await this.#request({ publish: { envelopes } });
    return response.receipt.published ?? [];
  }

  /**
   * Subscribe to channel names and Redis glob patterns; with `since`, replay each named
   * channel's history after a position first. With `ack`, deliveries must be acknowledged
   * (automatically once processed, unless `autoAck` is false).
   * @param {string | string[]} channels
   * @param {object} [options]
   * @param {Record<string, number | bigint | string | import("./positions.js").StreamPosition>} [options.since]
   *   start positions by channel name (a seq, 0 for all history, or `{seq, epoch}`)
   * @param {boolean} [options.ack]
   * @param {boolean} [options.autoAck]
   * @param {import("./subscription.js").MessageHandler} [options.onMessage] a callback instead of iteration
   */
  async subscribe(channels, { since = {}, ack = false, autoAck = true, onMessage } = {}) {
    const names = [channels].flat();
    const sub = this.#subscription(names, { ack, autoAck, onMessage });
    this.#subs.push(sub);
    const positions = Object.entries(since).map(([channel, start]) => channelPosition(channel, start));
    for (const { channel, position } of positions) this.positions.begin(channel, position);
    try {
      const response = await this.#request({ subscribe: { channels: names, since: positions, ack } });
      sub.states = response.receipt.subscriptions ?? [];
      this.#began(sub.states);
    } catch (error) {
      this.#subs.splice(this.#subs.indexOf(sub), 1);
      throw error;
    }
    return sub;
  }

  /**
   * @param {string[]} channels
   * @param {{ack: boolean, autoAck?: boolean, onMessage?: import("./subscription.js").MessageHandler}} options
   */
  #subscription(channels, { ack, autoAck = true, onMessage }) {
    return new Subscription({
      channels,
      ack,
      autoAck,
      onMessage,
      onError: this.#onError,
      unsubscribe: (sub) => this.#unsubscribe(sub),
    });
  }

  /** @param {Subscription} sub */
  async #unsubscribe(sub) {
    const index = this.#subs.indexOf(sub);
    if (index >= 0) this.#subs.splice(index, 1);
    const still = new Set(this.#subs.flatMap((other) => other.channels));
    const gone = sub.channels.filter((channel) => !still.has(channel));
    // Names still wanted, but by no subscription with acks any more: the hub only ever adds
    // acks to a name, so it is asked for them anew, without, from where they stand.
    const acked = (/** @type {string} */ name) =>
      this.#subs.some((other) => other.ack && other.channels.includes(name));
    const unacked = sub.ack ? sub.channels.filter((c) => still.has(c) && !acked(c)) : [];
    if (gone.length || unacked.length) {
      await this.#request({ unsubscribe: { channels: [...gone, ...unacked] } });
    }
    if (unacked.length) {
      const since = this.positions.list().filter((p) => covers(unacked, p.channel));
      await this.#request({ subscribe: { channels: unacked, since } });
    }
    // What waits in its queue can still be read, but no ack is expected for it any more (the
    // hub stopped redelivering it): it must not hold back acks of redeliveries.
    for (const { envelope } of sub.waiting) {
      const channel = envelope.channel;
      if (!this.#subs.some((other) => other.ack && other.wants(channel))) {
        this.#unacked.delete(keyOf(envelope));
      }
    }
  }

  #inboxName() {
    return `agent.${this.agentId}`;
  }

  /** Direct messages to this agent (`agent.<id>`), acknowledged as they are processed. */
  inbox() {
    const sub = this.#subs.find((s) => s.channels[0] === this.#inboxName());
    if (!this.agentId || !sub) throw new Error("only a session registered as an agent has an inbox");
    return sub;
  }

  /**
   * Send `value` to another agent's inbox and wait for its reply (an envelope on this agent's
   * inbox with the same correlation id). NOT_FOUND at once when there is no such agent.
   * @param {string} agentId
   * @param {import("./encoding.js").ContentLike} value
   * @param {EnvelopeOptions & {timeoutMs?: number}} [options]
   * @returns {Promise<Record<string, any>>} the reply envelope
   */
  async request(agentId, value, { timeoutMs = 30_000, ...options } = {}) {
    if (!this.agentId) throw new Error("request() needs a session registered as an agent");
    const correlationId = randomId();
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    const reply = new Promise((resolve, reject) => {
      this.#replies.set(correlationId, resolve);
      timer = setTimeout(
        () => reject(new HubError("DEADLINE_EXCEEDED", `no reply from ${agentId} within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      const replyTo = this.#inboxName();
      await this.publish(`agent.${agentId}`, value, { ...options, correlationId, replyTo });
      return /** @type {Record<string, any>} */ (await reply);
    } finally {
      clearTimeout(timer);
      this.#replies.delete(correlationId);
    }
  }

  /**
   * Answer a request: publish on its `replyTo` with its correlation id.
   * @param {{replyTo?: string, correlationId?: string, id?: string}} request the request envelope
   * @param {import("./encoding.js").ContentLike} value
   * @param {EnvelopeOptions} [options]
   */
  reply(request, value, options = {}) {
    if (!request.replyTo) throw new Error(`envelope ${request.id} has no replyTo to answer on`);
    return this.publish(request.replyTo, value, { ...options, correlationId: request.correlationId });
  }

  // Agents and tasks -----------------------------------------------------------------------

  /**
   * Report a status: "online", "busy", "waiting_input" or "draining" (or the enum names).
   * @param {string} status
   */
  async setStatus(status) {
    this.#status = enumName("AGENT_STATUS_", status);
    await this.#request({ heartbeat: { status: this.#status } });
  }

  /**
   * Run `handler` for every task assigned to this agent. It gets a TaskContext (input,
   * `progress()`, `ask()`, and a `signal` aborted on cancel); what it returns is the result
   * (text, bytes, `{contentType, data}` or a JSON value); throwing TaskRejected gives the task
   * back; any other error fails it.
   * @param {(task: TaskContext) => unknown} handler
   */
  onTask(handler) {
    this.#handler = handler;
    return handler;
  }

  /** How many tasks the handler is working on. */
  get runningTasks() {
    return this.#running.size;
  }

  /** @param {import("./tasks.js").Assignment} assignment */
  #assigned(assignment) {
    const key = taskKey(assignment);
    const { id: taskId } = assignment.task;
    const { attempt } = assignment;
    // An accept needs no receipt: if it is lost, the hub offers the task again on resume (and
    // this accepts again) or re-routes it after its accept deadline.
    const accept = { taskUpdate: { taskId, attempt, accept: {} } };
    if (this.#running.has(key)) {
      this.#write(accept);
      return;
    }
    if (!this.#handler) return;
    /** @param {object} update */
    const send = (update) => this.#request({ taskUpdate: { taskId, attempt, ...update } });
    const task = new TaskContext(assignment, send);
    this.#running.set(key, task);
    this.#write(accept);
    task.run(this.#handler, this.#onError).finally(() => this.#running.delete(key));
  }
}
