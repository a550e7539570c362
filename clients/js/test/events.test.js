import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { decodeAgentEvent, decodeTaskEvent } from "../agentplex.js";
import { NEEDS_HUB, PythonPeer } from "./helpers.js";

describe("system event payloads", NEEDS_HUB, () => {
  /** @type {PythonPeer} */
  let python;
  before(() => {
    python = new PythonPeer();
  });
  after(() => python.close());

  test("decode exactly as protobuf's canonical JSON renders them", async () => {
    const { agentEvent, taskEvent } = await python.call("events");
    assert.deepEqual(decodeAgentEvent(agentEvent.payload), agentEvent.json);
    assert.deepEqual(decodeTaskEvent(taskEvent.payload), taskEvent.json);
  });

  test("skip fields they do not know (a newer hub's additions)", async () => {
    const { agentEvent } = await python.call("events");
    const known = Buffer.from(agentEvent.payload, "base64");
    // Field 99 as a varint, then field 100 as a length-delimited "xy".
    const extended = Buffer.concat([known, Buffer.from([0x98, 0x06, 0x01, 0xa2, 0x06, 0x02, 0x78, 0x79])]);
    assert.deepEqual(decodeAgentEvent(new Uint8Array(extended)), agentEvent.json);
  });
});
