/**
 * Values as proto3 canonical JSON carries them: bytes in base64, uint64 as decimal strings,
 * enums by name. Helpers shared by the session, its subscriptions and task contexts.
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * @param {Uint8Array} bytes
 * @returns {string} standard base64 (what canonical JSON uses for `bytes` fields)
 */
export function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/**
 * @param {string | undefined} text base64, or nothing (an empty `bytes` field is omitted)
 * @returns {Uint8Array}
 */
export function fromBase64(text) {
  if (!text) return new Uint8Array(0);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** @param {Uint8Array} bytes */
export const utf8 = (bytes) => decoder.decode(bytes);

/**
 * Content with its media type, as `agentplex.v1.Payload` (and an envelope's payload) hold it.
 * @typedef {{contentType: string, data: Uint8Array}} Content
 */

/**
 * What an application hands in: text, bytes, a value to send as JSON, or explicit content.
 * @typedef {string | Uint8Array | Content | object | null | undefined} ContentLike
 */

/**
 * @param {ContentLike} value
 * @param {string} [contentType] overrides the guessed media type
 * @returns {Content}
 */
export function content(value, contentType = "") {
  if (value === null || value === undefined) return { contentType, data: new Uint8Array(0) };
  if (typeof value === "string") {
    return { contentType: contentType || "text/plain; charset=utf-8", data: encoder.encode(value) };
  }
  if (value instanceof Uint8Array) return { contentType, data: value };
  if ("data" in value && value.data instanceof Uint8Array) {
    const given = /** @type {Content} */ (value);
    return { contentType: contentType || given.contentType || "", data: given.data };
  }
  return { contentType: contentType || "application/json", data: encoder.encode(JSON.stringify(value)) };
}

/**
 * `agentplex.v1.Payload` in canonical JSON.
 * @param {ContentLike} value
 */
export function payloadJson(value) {
  const { contentType, data } = content(value);
  return { contentType, data: toBase64(data) };
}

/**
 * `agentplex.v1.Payload` from canonical JSON (default fields are absent there).
 * @param {{contentType?: string, data?: string} | undefined} json
 * @returns {Content}
 */
export function payloadFromJson(json) {
  return { contentType: json?.contentType ?? "", data: fromBase64(json?.data) };
}

/** @returns {string} 32 random hex digits (crypto.randomUUID needs a secure context) */
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A refusal from the hub: `code` is a gRPC status name such as "NOT_FOUND". */
export class HubError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   */
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "HubError";
    this.code = code;
  }

  /**
   * @param {{code?: string | number, message?: string}} error an `agentplex.v1.Error` in JSON
   */
  static from(error) {
    const code = String(error.code ?? "UNKNOWN").replace(/^ERROR_CODE_/, "");
    return new HubError(code, error.message ?? "");
  }
}
