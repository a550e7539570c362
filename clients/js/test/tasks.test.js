import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { connect, TaskRejected } from "../agentplex.js";
import { NEEDS_HUB, PythonPeer, WS_URL, within } from "./helpers.js";

describe("an agent's task handler", NEEDS_HUB, () => {
  /** @type {PythonPeer} */
  let python;
  before(() => {
    python = new PythonPeer();
  });
  after(() => python.close());

  test("completes a task submitted with the Python SDK", async () => {
    const agent = await connect(WS_URL, { card: { id: "js-worker", capabilities: ["js-task"] } });
    agent.onTask(async (task) => {
      await task.progress("halfway", 50);
      return `done: ${task.inputText}`;
    });
    try {
      const id = await python.call("submit", { input: "build it", require: ["js-task"] });
      const done = await python.call("wait", { task: id });
      assert.deepEqual(done, { state: "COMPLETED", result: "done: build it", error: "", attempt: 1 });
    } finally {
      await agent.close();
    }
  });

  test("fails a task when the handler throws", async () => {
    const agent = await connect(WS_URL, {
      card: { id: "js-failer", capabilities: ["js-fail"] },
      onError: () => {}, // the failure is the point
    });
    agent.onTask(() => {
      throw new Error("no can do");
    });
    try {
      const id = await python.call("submit", { input: "x", require: ["js-fail"] });
      const done = await python.call("wait", { task: id });
      assert.equal(done.state, "FAILED");
      assert.match(done.error, /no can do/);
    } finally {
      await agent.close();
    }
  });

  test("a cancel from the hub aborts the handler's signal", async () => {
    const agent = await connect(WS_URL, { card: { id: "js-canceled", capabilities: ["js-cancel"] } });
    /** @type {(reason: unknown) => void} */
    let aborted = () => {};
    const abortedPromise = new Promise((resolve) => (aborted = resolve));
    let started = () => {};
    const startedPromise = new Promise((resolve) => (started = () => resolve(undefined)));
    agent.onTask(async (task) => {
      started();
      await new Promise((resolve) => task.signal.addEventListener("abort", resolve));
      aborted(task.signal.reason);
      return "too late";
    });
    try {
      const id = await python.call("submit", { input: "x", require: ["js-cancel"] });
      await within(startedPromise, 10_000, "the handler to start");
      assert.equal(await python.call("cancel", { task: id, reason: "changed my mind" }), "CANCELED");
      const reason = await within(abortedPromise, 10_000, "the abort");
      assert.match(String(reason), /changed my mind/);
    } finally {
      await agent.close();
    }
  });

  test("TaskRejected gives the task back to another agent", async () => {
    const picky = await connect(WS_URL, { card: { id: "js-picky", capabilities: ["js-reject"] } });
    picky.onTask(() => {
      throw new TaskRejected("not today");
    });
    try {
      const id = await python.call("submit", { input: "x", require: ["js-reject"] });
      const willing = await connect(WS_URL, { card: { id: "js-willing", capabilities: ["js-reject"] } });
      willing.onTask(() => "took it");
      try {
        const done = await python.call("wait", { task: id });
        assert.equal(done.state, "COMPLETED");
        assert.equal(done.result, "took it");
      } finally {
        await willing.close();
      }
    } finally {
      await picky.close();
    }
  });
});

describe("a submitter", NEEDS_HUB, () => {
  test("submits over its session and gets the result an agent returned", async () => {
    const agent = await connect(WS_URL, { card: { id: "js-doer", capabilities: ["js-submit"] } });
    agent.onTask(async (task) => `did ${task.inputText}`);
    const submitter = await connect(WS_URL);
    try {
      const handle = await submitter.submit("the dishes", { require: ["js-submit"] });
      assert.ok(handle.id);
      const result = await within(handle.result(), 10_000);
      assert.equal(new TextDecoder().decode(result.data), "did the dishes");
      assert.equal(handle.task.state, "TASK_STATE_COMPLETED");
      assert.equal(handle.task.assignedAgentId, "js-doer");
    } finally {
      await submitter.close();
      await agent.close();
    }
  });

  test("a refused submit rejects with the hub's reason", async () => {
    const submitter = await connect(WS_URL);
    try {
      await assert.rejects(submitter.submit("x", { maxAttempts: 999 }), /max_attempts/);
    } finally {
      await submitter.close();
    }
  });
});
