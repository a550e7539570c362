/**
 * What the tests share: the hub under test (from the environment that
 * tests/integration/test_js_client.py sets) and a Python SDK peer to talk to it from the other
 * side (tests/support/js_peer.py).
 */

import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

export const WS_URL = process.env.AGENTPLEX_WS_URL ?? "";
const GRPC = process.env.AGENTPLEX_GRPC ?? "";
const PYTHON = process.env.AGENTPLEX_PYTHON ?? "python3";
const REPO = fileURLToPath(new URL("../../..", import.meta.url));

/** For `describe(name, NEEDS_HUB, ...)`: skipped when no hub was given. */
export const NEEDS_HUB = {
  skip: WS_URL && GRPC ? false : "no hub: run through tests/integration/test_js_client.py",
};

/**
 * @template T
 * @param {Promise<T>} promise
 * @param {number} ms
 * @param {string} what
 * @returns {Promise<T>}
 */
export async function within(promise, ms, what) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The first `count` items of an async iterable, within 10 s.
 * @template T
 * @param {AsyncIterable<T>} source
 * @param {number} count
 * @returns {Promise<T[]>}
 */
export function collect(source, count) {
  const run = async () => {
    const out = [];
    for await (const item of source) {
      out.push(item);
      if (out.length === count) break;
    }
    return out;
  };
  return within(run(), 10_000, `${count} items`);
}

/** The Python SDK in a subprocess, driven by JSON lines. */
export class PythonPeer {
  constructor() {
    this.child = spawn(PYTHON, ["-m", "tests.support.js_peer", GRPC], {
      cwd: REPO,
      stdio: ["pipe", "pipe", "inherit"],
    });
    /** @type {Map<number, {resolve: (v: any) => void, reject: (e: Error) => void}>} */
    this.pending = new Map();
    this.ids = 0;
    createInterface({ input: /** @type {import("node:stream").Readable} */ (this.child.stdout) }).on(
      "line",
      (line) => {
        const { id, result, error } = JSON.parse(line);
        const call = this.pending.get(id);
        this.pending.delete(id);
        if (error) call?.reject(new Error(`python peer: ${error}`));
        else call?.resolve(result);
      },
    );
  }

  /**
   * @param {string} op
   * @param {object} [args]
   * @returns {Promise<any>}
   */
  call(op, args = {}) {
    const id = ++this.ids;
    const answer = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.child.stdin?.write(`${JSON.stringify({ id, op, ...args })}\n`);
    return within(answer, 20_000, `python peer ${op}`);
  }

  async close() {
    this.child.stdin?.end();
    if (this.child.exitCode === null) await once(this.child, "exit");
  }
}
