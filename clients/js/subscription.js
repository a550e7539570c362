/**
 * Deliveries of some channels and patterns: an async iterable of messages, or a callback.
 * @module
 */

import { fromBase64, utf8 } from "./encoding.js";
import { covers } from "./glob.js";

/**
 * `agentplex.v1.Envelope` in canonical JSON.
 * @typedef {object} Envelope
 * @property {string} [id]
 * @property {string} channel
 * @property {string} [sender]
 * @property {string} [contentType]
 * @property {string} [payload] base64
 * @property {Record<string, string>} [headers]
 * @property {string} [correlationId]
 * @property {string} [replyTo]
 * @property {string} [createdAt] RFC 3339
 * @property {import("./positions.js").StreamPosition} [position]
 * @property {string} [sha256]
 */

/** One delivery: the envelope, which attempt it is, and a way to acknowledge it. */
export class Message {
  /**
   * @param {Envelope} envelope
   * @param {number} attempt 1 for the first delivery, more for redeliveries
   * @param {(envelope: Envelope) => void} ack
   */
  constructor(envelope, attempt, ack) {
    this.envelope = envelope;
    this.attempt = attempt;
    this.channel = envelope.channel;
    this.data = fromBase64(envelope.payload);
    this.#ack = ack;
  }

  /** @type {(envelope: Envelope) => void} */
  #ack;

  /** The payload as UTF-8 text. */
  get text() {
    return utf8(this.data);
  }

  /** The payload parsed as JSON. */
  json() {
    return JSON.parse(this.text);
  }

  /** Acknowledge this delivery (needed on subscriptions with `ack`; `autoAck` does it). */
  ack() {
    this.#ack(this.envelope);
  }
}

/**
 * @callback MessageHandler
 * @param {Message} message
 * @returns {void | Promise<void>}
 */

/**
 * A subscription's deliveries, in order. Iterate it (`for await (const m of sub)`) or give
 * `onMessage`: each message is handed over once the previous one was processed; with `ack` and
 * `autoAck` (the default) it is acknowledged then.
 */
export class Subscription {
  /**
   * @param {object} options
   * @param {string[]} options.channels names and Redis glob patterns
   * @param {boolean} options.ack
   * @param {boolean} options.autoAck
   * @param {MessageHandler} [options.onMessage]
   * @param {(error: unknown) => void} options.onError where a failing `onMessage` is reported
   * @param {(sub: Subscription) => Promise<void>} options.unsubscribe
   */
  constructor({ channels, ack, autoAck, onMessage, onError, unsubscribe }) {
    this.channels = channels;
    this.ack = ack;
    this.autoAck = autoAck;
    /** @type {Array<{channel: string, recovered?: boolean, position?: object, ackRequired?: boolean}>} */
    this.states = [];
    this.#onMessage = onMessage;
    this.#onError = onError;
    this.#unsubscribe = unsubscribe;
  }

  /** @type {MessageHandler | undefined} */ #onMessage;
  /** @type {(error: unknown) => void} */ #onError;
  /** @type {(sub: Subscription) => Promise<void>} */ #unsubscribe;
  /** @type {Message[]} */ #queue = [];
  /** @type {((result: IteratorResult<Message>) => void) | null} */ #waiter = null;
  #chain = Promise.resolve();
  #ended = false;

  /** @param {string} channel */
  wants(channel) {
    return covers(this.channels, channel);
  }

  /** @param {Message} message */
  push(message) {
    if (this.#ended) return;
    const handler = this.#onMessage;
    if (handler) {
      this.#chain = this.#chain
        .then(() => handler(message))
        .catch(this.#onError)
        .then(() => this.#autoAck(message));
    } else if (this.#waiter) {
      const waiter = this.#waiter;
      this.#waiter = null;
      waiter({ value: message, done: false });
    } else {
      this.#queue.push(message);
    }
  }

  /** Messages received and not handed over yet. */
  get waiting() {
    return [...this.#queue];
  }

  /** No more messages: iteration ends once the queue is drained. */
  end() {
    this.#ended = true;
    this.#waiter?.({ value: undefined, done: true });
    this.#waiter = null;
  }

  /** Stop receiving (the hub is told once no other subscription wants the channels). */
  async unsubscribe() {
    await this.#unsubscribe(this);
    this.end();
  }

  /** @param {Message} message */
  #autoAck(message) {
    if (this.ack && this.autoAck) message.ack();
  }

  /** @returns {AsyncIterator<Message>} */
  [Symbol.asyncIterator]() {
    /** @type {Message | undefined} */
    let previous;
    return {
      next: () => {
        if (previous) this.#autoAck(previous);
        const value = this.#queue.shift();
        previous = value;
        if (value) return Promise.resolve({ value, done: false });
        if (this.#ended) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.#waiter = (result) => {
            previous = result.done ? undefined : result.value;
            resolve(result);
          };
        });
      },
    };
  }
}
