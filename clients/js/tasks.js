/**
 * What an agent's task handler gets for one assignment, and how its outcome is reported.
 * @module
 */

import { payloadFromJson, payloadJson } from "./encoding.js";

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
