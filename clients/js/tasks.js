/**
 * What an agent's task handler gets for one assignment, and how its outcome is reported; and
 * the handle of a task a session submitted.
 * @module
 */

import { payloadFromJson, payloadJson } from "./encoding.js";
import { decodeTaskEvent } from "./events.js";

/** Thrown by a task handler to give the task back (the hub offers it to another agent). */
export class TaskRejected extends Error {
  /** @param {string} reason */
  constructor(reason) {
    super(reason);
    this.name = "TaskRejected";
  }
}

/**
 * `agentplex.v1.TaskAssignment` in canonical JSON (the task as `agentplex.v1.Task` JSON).
 * @typedef {{task: {id: string, input?: {contentType?: string, data?: string}} & Record<string, any>, attempt: number, ackDeadline?: string}} Assignment
 */

/**
 * @callback SendUpdate sends a task update (its fields, without task id and attempt) and
 * resolves on the hub's receipt
 * @param {object} update
 * @returns {Promise<unknown>}
 */

/** One assignment: the task, its input, a cancel signal and ways to report on it. */
export class TaskContext {
  /**
   * @param {Assignment} assignment
   * @param {SendUpdate} send
   */
  constructor(assignment, send) {
    this.task = assignment.task;
    this.id = assignment.task.id;
    this.attempt = assignment.attempt;
    /** The task's input: `{contentType, data}` with `data` a Uint8Array. */
    this.input = payloadFromJson(assignment.task.input);
    this.#controller = new AbortController();
    /** Aborted when the hub cancels the task (or the session closes for good). */
    this.signal = this.#controller.signal;
    this.#send = send;
  }

  /** @type {AbortController} */ #controller;
  /** @type {SendUpdate} */ #send;
  /** @type {((input: import("./encoding.js").Content) => void) | null} */ #answer = null;

  /** The input as UTF-8 text. */
  get inputText() {
    return new TextDecoder().decode(this.input.data);
  }

  /**
   * @param {string} message
   * @param {number} [percent] 0 to 100
   */
  progress(message, percent = 0) {
    return this.#send({ progress: { message, percent } });
  }

  /**
   * Ask for input (the task is INPUT_REQUIRED meanwhile) and wait for it.
   * @param {string} prompt
   * @returns {Promise<import("./encoding.js").Content>}
   */
  async ask(prompt) {
    const answer = new Promise((resolve) => {
      this.#answer = resolve;
    });
    await this.#send({ inputNeeded: { prompt } });
    return answer;
  }

  /** @param {{contentType?: string, data?: string}} input the hub's `TaskInput.input` */
  give(input) {
    this.#answer?.(payloadFromJson(input));
    this.#answer = null;
  }

  /** @param {string} reason */
  cancel(reason) {
    this.#controller.abort(new Error(`task canceled: ${reason || "no reason given"}`));
  }

  /**
   * Run `handler` and report its outcome: its value is the result, TaskRejected gives the task
   * back, any other error fails it; after a cancel nothing is reported (the hub decided).
   * @param {(task: TaskContext) => unknown} handler
   * @param {(error: unknown) => void} onError
   */
  async run(handler, onError) {
    /** @type {object} */
    let outcome;
    try {
      outcome = { result: payloadJson(/** @type {any} */ (await handler(this))) };
    } catch (error) {
      if (error instanceof TaskRejected) {
        outcome = { reject: { reason: error.message } };
      } else {
        onError(error);
        const message = error instanceof Error ? error.message : String(error);
        outcome = { failure: { code: "UNKNOWN", message: message.slice(0, 1000) } };
      }
    }
    if (this.signal.aborted) return;
    await this.#send(outcome).catch(onError);
  }
}

const FINAL = new Set([
  "TASK_STATE_COMPLETED",
  "TASK_STATE_FAILED",
  "TASK_STATE_CANCELED",
  "TASK_STATE_REJECTED",
]);

/** A submitted task that did not complete (failed, canceled or rejected). */
export class TaskFailed extends Error {
  /** @param {Record<string, any>} task the final task, in canonical JSON */
  constructor(task) {
    super(`task ${task.id} is ${task.state}: ${task.error?.message ?? task.statusMessage ?? ""}`);
    this.name = "TaskFailed";
    this.task = task;
  }
}

/**
 * A task this session submitted, followed on `_sys.tasks` until it is final. The events come
 * from a subscription opened before the submit, so none can be missed.
 */
export class TaskHandle {
  /**
   * @param {Record<string, any>} task the task the hub accepted (canonical JSON)
   * @param {import("./subscription.js").Subscription} events the `_sys.tasks` subscription
   */
  constructor(task, events) {
    this.id = task.id;
    this.task = task;
    this.#events = events;
  }

  /** @type {import("./subscription.js").Subscription} */
  #events;

  /** Resolves with the final task (state, result or error), whatever the outcome. */
  async wait() {
    try {
      if (FINAL.has(this.task.state)) return this.task;
      for await (const message of this.#events) {
        if (message.envelope.headers?.task !== this.id) continue;
        this.task = decodeTaskEvent(message.data).task;
        if (FINAL.has(this.task.state)) break;
      }
      return this.task;
    } finally {
      await this.#events.unsubscribe();
    }
  }

  /**
   * The result of a completed task; rejects with `TaskFailed` otherwise.
   * @returns {Promise<import("./encoding.js").Content>}
   */
  async result() {
    const task = await this.wait();
    if (task.state !== "TASK_STATE_COMPLETED") throw new TaskFailed(task);
    return payloadFromJson(task.result);
  }
}
