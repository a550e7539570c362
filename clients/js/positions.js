/**
 * The last position seen per channel: what a reconnect resumes from, and the duplicate filter.
 * Sequence numbers are uint64, strings in JSON: compared as BigInt.
 * @module
 */

/**
 * `agentplex.v1.StreamPosition` in canonical JSON (a zero seq or an empty epoch is absent).
 * @typedef {{seq?: string, epoch?: string}} StreamPosition
 */

/**
 * `agentplex.v1.ChannelPosition` in canonical JSON.
 * @typedef {{channel: string, position: StreamPosition}} ChannelPosition
 */

export class Positions {
  /** @type {Map<string, {seq: bigint, epoch: string}>} */
  #last = new Map();
  /**
   * Where each subscription to a channel named outright began: what a reconnect resumes a
   * channel from while nothing has been seen on it.
   * @type {Map<string, {seq: bigint, epoch: string}>}
   */
  #began = new Map();

  /**
   * Record where a subscription to `channel` began; the first start recorded stays (a
   * caller's `since` comes before the receipt). Not a duplicate filter: an envelope at or
   * below it that arrives later was published as the subscription began, and is new.
   * @param {string} channel
   * @param {StreamPosition | undefined} position
   */
  begin(channel, position) {
    if (this.#began.has(channel)) return;
    this.#began.set(channel, { seq: BigInt(position?.seq ?? 0), epoch: position?.epoch ?? "" });
  }

  /**
   * Record `position`; false when it is not newer than what was seen (a duplicate).
   * @param {string} channel
   * @param {StreamPosition | undefined} position
   */
  advance(channel, position) {
    const seq = BigInt(position?.seq ?? 0);
    const epoch = position?.epoch ?? "";
    const last = this.#last.get(channel);
    if (last && seq <= last.seq && (last.epoch === epoch || !last.epoch)) return false;
    this.#last.set(channel, { seq, epoch });
    return true;
  }

  /**
   * @param {string} channel
   * @returns {ChannelPosition | undefined}
   */
  get(channel) {
    const last = this.#last.get(channel);
    return last && { channel, position: { seq: String(last.seq), epoch: last.epoch } };
  }

  /** The last position seen on each channel, or where its subscription began. @returns {ChannelPosition[]} */
  list() {
    const listed = [...this.#last.keys()].map((c) => /** @type {ChannelPosition} */ (this.get(c)));
    for (const [channel, { seq, epoch }] of this.#began) {
      if (!this.#last.has(channel)) listed.push({ channel, position: { seq: String(seq), epoch } });
    }
    return listed;
  }
}

/**
 * A start position for `subscribe({since})`: a seq alone (the channel's current epoch) or a
 * full position.
 * @param {string} channel
 * @param {number | bigint | string | StreamPosition} start
 * @returns {ChannelPosition}
 */
export function channelPosition(channel, start) {
  if (typeof start === "object") {
    return { channel, position: { seq: String(start.seq ?? 0), epoch: start.epoch ?? "" } };
  }
  return { channel, position: { seq: String(start), epoch: "" } };
}
