import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

import { connect, decodeAgentEvent, HubError } from "../agentplex.js";
import { collect, NEEDS_HUB, PythonPeer, WS_URL, within } from "./helpers.js";

/** @param {Array<{envelope: {position?: {seq?: string, epoch?: string}}}>} messages */
const positions = (messages) =>
  messages.map(({ envelope: { position } }) => ({ seq: position?.seq, epoch: position?.epoch }));

describe("a session over the WebSocket edge", NEEDS_HUB, () => {
  /** @type {PythonPeer} */
  let python;
  before(() => {
    python = new PythonPeer();
  });
  after(() => python.close());

  test("registers an agent, announced on _sys.agents", async () => {
    const watcher = await connect(WS_URL);
    const events = await watcher.subscribe("_sys.agents");
    const agent = await connect(WS_URL, {
      card: { id: "js-register", kind: "custom", capabilities: ["js", "review"], maxConcurrentTasks: 2 },
    });
    try {
      assert.equal(agent.agentId, "js-register");
      assert.ok(agent.welcome.resumeToken, "a resume token");
      assert.ok(agent.welcome.heartbeatIntervalMs > 0);
      assert.deepEqual(agent.inbox().channels, ["agent.js-register"]);
      const [joined] = await collect(events, 1);
      const event = decodeAgentEvent(joined.envelope.payload);
      assert.equal(event.type, "AGENT_EVENT_TYPE_JOINED");
      assert.deepEqual(event.agent.card, {
        id: "js-register",
        name: "js-register", // the hub names an unnamed agent after its id
        kind: "AGENT_KIND_CUSTOM",
        capabilities: ["js", "review"],
        maxConcurrentTasks: 2,
      });
      assert.equal(event.agent.transport, "TRANSPORT_WEBSOCKET");
    } finally {
      await agent.close();
      await watcher.close();
    }
  });

  test("publishes to a Python gRPC subscriber at the same positions", async () => {
    const session = await connect(WS_URL);
    try {
      await python.call("subscribe", { channel: "js.out", count: 3 });
      const results = [];
      for (const text of ["a", "b", "c"]) results.push(await session.publish("js.out", text));
      const got = await python.call("take", { channel: "js.out" });
      assert.deepEqual(got.map((/** @type {any} */ e) => e.payload), ["a", "b", "c"]);
      assert.deepEqual(
        got.map((/** @type {any} */ e) => ({ seq: e.seq, epoch: e.epoch })),
        results.map((r) => r.position),
      );
    } finally {
      await session.close();
    }
  });

  test("receives what Python publishes, by iteration and by callback, at the same positions", async () => {
    const session = await connect(WS_URL);
    try {
      const iterated = await session.subscribe("py.out");
      /** @type {any[]} */
      const called = [];
      let allCalled = () => {};
      const callbacks = new Promise((resolve) => (allCalled = () => resolve(undefined)));
      await session.subscribe("py.*", {
        onMessage: (message) => {
          called.push(message);
          if (called.length === 3) allCalled();
        },
      });
      const published = await python.call("publish", { channel: "py.out", payloads: ["x", "y", "z"] });
      const got = await collect(iterated, 3);
      await within(callbacks, 10_000, "three callbacks");
      assert.deepEqual(got.map((m) => m.text), ["x", "y", "z"]);
      assert.deepEqual(positions(got), published);
      assert.deepEqual(positions(called), published);
    } finally {
      await session.close();
    }
  });

  test("replays history from a position, then goes live", async () => {
    await python.call("publish", { channel: "replay.me", payloads: ["1", "2", "3"] });
    const session = await connect(WS_URL);
    try {
      const sub = await session.subscribe("replay.me", { since: { "replay.me": 1 } });
      assert.equal(sub.states[0].recovered, true);
      await python.call("publish", { channel: "replay.me", payloads: ["4"] });
      const got = await collect(sub, 3);
      assert.deepEqual(got.map((m) => m.text), ["2", "3", "4"]);
    } finally {
      await session.close();
    }
  });

  test("refusals arrive as HubError with the gRPC code", async () => {
    const session = await connect(WS_URL);
    try {
      await assert.rejects(session.publish("bad name!", "x"), (error) => {
        assert.ok(error instanceof HubError);
        assert.equal(error.code, "INVALID_ARGUMENT");
        return true;
      });
    } finally {
      await session.close();
    }
  });

  test("a frame over the hub's size limit is refused before it is sent", async () => {
    const session = await connect(WS_URL);
    try {
      const limit = Number(session.welcome.maxFrameBytes);
      assert.ok(limit > 0);
      const payload = "x".repeat(600_000); // each envelope fits; together they do not
      const count = Math.ceil(limit / payload.length) + 1;
      const big = Array.from({ length: count }, () => ({ channel: "js.big", payload }));
      await assert.rejects(session.publishBatch(big), (error) => {
        assert.ok(error instanceof HubError);
        assert.equal(error.code, "RESOURCE_EXHAUSTED");
        assert.match(error.message, /over the hub's limit of \d+ \(server\.max_message_bytes\)/);
        return true;
      });
      const [small] = await session.publishBatch(big.slice(0, 1));
      assert.ok(small.position.seq);
      assert.equal(session.reconnects, 0);
    } finally {
      await session.close();
    }
  });

  test("an agent's inbox delivers direct messages, acknowledged as they are processed", async () => {
    const agent = await connect(WS_URL, { card: { id: "js-inbox" } });
    try {
      await python.call("publish", { channel: "agent.js-inbox", payloads: ["dm1", "dm2"] });
      const got = await collect(agent.inbox(), 2);
      assert.deepEqual(got.map((m) => [m.text, m.attempt]), [["dm1", 1], ["dm2", 1]]);
    } finally {
      await agent.close();
    }
  });

  test("what an ended subscription left unread does not hold back acks of its replays", async () => {
    /** @type {string[]} */
    const acked = [];
    class SpySocket extends WebSocket {
      /** @param {string | ArrayBufferLike | Blob | ArrayBufferView} data */
      send(data) {
        for (const { position } of JSON.parse(String(data)).ack?.positions ?? []) {
          acked.push(position.seq);
        }
        super.send(data);
      }
    }
    const agent = await connect(WS_URL, { card: { id: "js-leaver" }, WebSocket: SpySocket });
    try {
      const first = await agent.subscribe("js-left", { ack: true, autoAck: false });
      await python.call("publish", { channel: "js-left", payloads: ["read", "unread"] });
      await collect(first, 1);
      await sleep(100); // "unread" arrives and waits in the queue
      await first.unsubscribe();
      // A replay from the start: both are old news to the session. "read" is still held by the
      // application (no ack for it yet); "unread" was let go with its subscription, so it is
      // acknowledged at once instead of coming back after every ack timeout.
      await agent.subscribe("js-left", { ack: true, since: { "js-left": 0 } });
      const deadline = Date.now() + 2_000;
      while (!acked.includes("2") && Date.now() < deadline) await sleep(20);
      assert.ok(acked.includes("2"), "the replayed unread message was not acknowledged");
      assert.ok(!acked.includes("1"), "the message the application holds was acknowledged");
    } finally {
      await agent.close();
    }
  });

  test("when the last subscription with acks on a channel ends, the hub stops asking for them", async () => {
    /** @type {number[]} */
    const attempts = [];
    class SpySocket extends WebSocket {
      /** @param {(event: MessageEvent) => void} handler */
      set onmessage(handler) {
        super.onmessage = (/** @type {MessageEvent} */ event) => {
          const frames = JSON.parse(String(event.data));
          for (const frame of frames.batch?.frames ?? [frames]) {
            for (const d of frame.deliveries?.deliveries ?? []) {
              if (d.envelope.channel === "js-mix") attempts.push(d.attempt ?? 1);
            }
          }
          handler(event);
        };
      }
    }
    const agent = await connect(WS_URL, { card: { id: "js-mixed" }, WebSocket: SpySocket });
    try {
      const acked = await agent.subscribe("js-mix", { ack: true, autoAck: false });
      const plain = await agent.subscribe("js-mix");
      await python.call("publish", { channel: "js-mix", payloads: ["m1"] });
      await collect(acked, 1);
      await acked.unsubscribe();
      await python.call("publish", { channel: "js-mix", payloads: ["m2"] });
      const got = await collect(plain, 2);
      assert.deepEqual(got.map((m) => m.text), ["m1", "m2"]);
      await sleep(1_200); // past the hub's ack timeout (0.5 s): a redelivery would have come
      assert.ok(attempts.length && attempts.every((n) => n === 1), `attempts: ${attempts}`);
    } finally {
      await agent.close();
    }
  });

  test("an acknowledged message comes once; one waiting unread is not acknowledged", async () => {
    // The hub under test redelivers what is left unacknowledged after 0.5 s (test_js_client.py).
    // The session drops a redelivery it has seen, so watch the raw frames.
    /** @type {Array<[string, number]>} */
    const raw = [];
    /** @type {Array<[number, () => void]>} */
    const waiting = [];
    const redelivery = (/** @type {number} */ attempt) =>
      new Promise((resolve) => waiting.push([attempt, () => resolve(undefined)]));
    class SpySocket extends WebSocket {
      /** @param {string} url @param {string} protocol */
      constructor(url, protocol) {
        super(url, protocol);
        this.addEventListener("message", (event) => {
          const frame = JSON.parse(String(event.data));
          for (const { envelope, attempt = 1 } of frame.deliveries?.deliveries ?? []) {
            raw.push([Buffer.from(envelope.payload ?? "", "base64").toString(), attempt]);
            for (const [wanted, resolve] of waiting) if (attempt >= wanted) resolve();
          }
        });
      }
    }
    const agent = await connect(WS_URL, { card: { id: "js-acks" }, WebSocket: SpySocket });
    try {
      await python.call("publish", { channel: "agent.js-acks", payloads: ["auto", "manual", "later"] });
      const got = await collect(agent.inbox(), 2); // asking for "manual" acks "auto"
      assert.deepEqual(got.map((m) => [m.text, m.attempt]), [["auto", 1], ["manual", 1]]);
      got[1].ack();
      // "later" waits unread, so unacknowledged: the hub sends it again after each timeout, and
      // would have sent the other two by then (they were due first) had their acks been lost.
      // The session drops those redeliveries without acknowledging them, so they go on.
      await within(redelivery(3), 5_000, "a second redelivery of the unacked message");
      assert.deepEqual(raw.slice(0, 3), [["auto", 1], ["manual", 1], ["later", 1]]);
      const again = raw.slice(3, 5);
      assert.deepEqual(again, [["later", 2], ["later", 3]], "only the unacked one came again");
      const [later] = await collect(agent.inbox(), 1); // the redeliveries were not new messages
      assert.deepEqual([later.text, later.attempt], ["later", 1]);
      later.ack();
      await sleep(200); // one in flight as it was acknowledged may still arrive
      const seen = raw.length;
      await sleep(1_500); // three ack timeouts: nothing more comes
      assert.equal(raw.length, seen, "an acknowledged message came again");
    } finally {
      await agent.close();
    }
  });

  /**
   * Drop a session's connection, keep the network down for `downMs` while Python publishes,
   * then let it reconnect: the subscription must see every message once, in order.
   * @param {string} id the agent's id
   * @param {number} downMs
   */
  async function dropAndReconnect(id, downMs) {
    const gate = { open: true };
    // The network as the session sees it: while the gate is shut, connections fail.
    class GatedSocket extends WebSocket {
      /** @param {string} url @param {string} protocol */
      constructor(url, protocol) {
        super(gate.open ? url : "ws://127.0.0.1:9/v1/connect", protocol);
      }
    }
    /** @type {string[]} */
    const states = [];
    const session = await connect(WS_URL, {
      card: { id },
      WebSocket: GatedSocket,
      maxBackoffMs: 100,
      onState: (state) => states.push(state),
    });
    const channel = `${id}.feed`;
    try {
      const sub = await session.subscribe(channel);
      const quiet = await session.subscribe(`${id}.quiet`); // nothing on it before the drop
      const payloads = Array.from({ length: 8 }, (_, i) => `m${i}`);
      await python.call("publish", { channel, payloads: payloads.slice(0, 3) });
      const first = await collect(sub, 3);
      gate.open = false;
      session.drop();
      await python.call("publish", { channel, payloads: payloads.slice(3, 6) });
      await python.call("publish", { channel: `${id}.quiet`, payloads: ["q1"] });
      await new Promise((resolve) => setTimeout(resolve, downMs));
      gate.open = true;
      const reconnected = new Promise((resolve) => {
        const poll = setInterval(() => session.reconnects && resolve(clearInterval(poll)), 20);
      });
      await within(reconnected, 10_000, "a reconnect");
      await python.call("publish", { channel, payloads: payloads.slice(6) });
      const rest = await collect(sub, 5);
      assert.deepEqual([...first, ...rest].map((m) => m.text), payloads);
      assert.deepEqual((await collect(quiet, 1)).map((m) => m.text), ["q1"]);
      assert.deepEqual(states, ["connected", "reconnecting", "connected"]);
      assert.equal(session.agentId, id);
      return session.welcome.resumed === true; // false is left out of canonical JSON
    } finally {
      await session.close();
    }
  }

  test("reconnects and resumes after a drop: no gap, no duplicate", async () => {
    assert.equal(await dropAndReconnect("js-roamer", 0), true, "the hub resumed the session");
  });

  test("after the grace period: registers again and replays the gap from history", async () => {
    // The hub under test keeps a dropped session for 1.5 s (test_js_client.py).
    assert.equal(await dropAndReconnect("js-late", 2500), false, "a new session");
  });
});
