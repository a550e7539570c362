/**
 * A small protobuf decoder driven by schema tables, producing what proto3 canonical JSON
 * would (camelCase names, enum names, uint64 as strings, bytes in base64, RFC 3339 times,
 * default values left out): enough to read the hub's own events without a dependency.
 * Fields not in a schema are skipped, as protobuf parsers do.
 * @module
 */

import { toBase64 } from "./encoding.js";

/**
 * A field's type: a scalar name, `{enum: names by number}`, `{message: Schema}`, or a map of
 * strings to strings ("map").
 * @typedef {"string" | "bytes" | "bool" | "int32" | "uint32" | "uint64" | "float" | "timestamp" | "map" | {enum: string[]} | {message: Schema}} FieldType
 */

/**
 * Field number → [JSON name, type, repeated?].
 * @typedef {Record<number, [string, FieldType, boolean?]>} Schema
 */

const textDecoder = new TextDecoder();

class Reader {
  /** @param {Uint8Array} bytes */
  constructor(bytes) {
    this.bytes = bytes;
    this.pos = 0;
  }

  get done() {
    return this.pos >= this.bytes.length;
  }

  varint() {
    let value = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (this.pos >= this.bytes.length) throw new RangeError("protobuf: truncated varint");
      const byte = this.bytes[this.pos++];
      value |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return value;
    }
  }

  /** @param {number} length */
  take(length) {
    if (this.pos + length > this.bytes.length) throw new RangeError("protobuf: truncated field");
    const out = this.bytes.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  /** @param {number} wireType */
  skip(wireType) {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.take(8);
    else if (wireType === 2) this.take(Number(this.varint()));
    else if (wireType === 5) this.take(4);
    else throw new RangeError(`protobuf: unsupported wire type ${wireType}`);
  }
}

/**
 * Seconds and nanos as canonical JSON writes a Timestamp: 0, 3, 6 or 9 fraction digits.
 * @param {{seconds?: string, nanos?: number}} ts
 */
function rfc3339(ts) {
  const iso = new Date(Number(ts.seconds ?? 0) * 1000).toISOString().slice(0, 19);
  const nanos = ts.nanos ?? 0;
  if (!nanos) return `${iso}Z`;
  const digits = nanos % 1e6 === 0 ? 3 : nanos % 1e3 === 0 ? 6 : 9;
  return `${iso}.${String(nanos).padStart(9, "0").slice(0, digits)}Z`;
}

const TIMESTAMP = /** @type {Schema} */ ({ 1: ["seconds", "uint64"], 2: ["nanos", "int32"] });
const MAP_ENTRY = /** @type {Schema} */ ({ 1: ["key", "string"], 2: ["value", "string"] });

/**
 * @param {Reader} reader
 * @param {number} wireType
 * @param {FieldType} type
 * @returns {unknown}
 */
function readValue(reader, wireType, type) {
  if (type === "float") return new DataView(reader.take(4).slice().buffer).getFloat32(0, true);
  if (wireType === 2) {
    const bytes = reader.take(Number(reader.varint()));
    if (type === "string") return textDecoder.decode(bytes);
    if (type === "bytes") return toBase64(bytes);
    if (type === "timestamp") return rfc3339(/** @type {any} */ (decode(TIMESTAMP, bytes)));
    if (type === "map") return decode(MAP_ENTRY, bytes);
    if (typeof type === "object" && "message" in type) return decode(type.message, bytes);
    throw new RangeError("protobuf: a length-delimited value for a scalar field");
  }
  const value = reader.varint();
  if (type === "bool") return value !== 0n;
  if (type === "uint64") return String(value);
  if (type === "uint32") return Number(BigInt.asUintN(32, value));
  const number = Number(BigInt.asIntN(32, value));
  if (typeof type === "object" && "enum" in type) return type.enum[number] ?? number;
  return number;
}

/** @param {unknown} value */
const isDefault = (value) => value === "" || value === 0 || value === false || value === "0";

/**
 * Decode `bytes` as the message `schema` describes.
 * @param {Schema} schema
 * @param {Uint8Array} bytes
 * @returns {Record<string, any>}
 */
export function decode(schema, bytes) {
  const reader = new Reader(bytes);
  /** @type {Record<string, any>} */
  const out = {};
  while (!reader.done) {
    const key = Number(reader.varint());
    const [number, wireType] = [key >>> 3, key & 7];
    const field = schema[number];
    if (!field) {
      reader.skip(wireType);
      continue;
    }
    const [name, type, repeated] = field;
    if (repeated && wireType === 2 && typeof type === "object" && "enum" in type) {
      const packed = new Reader(reader.take(Number(reader.varint()))); // packed enums
      while (!packed.done) (out[name] ??= []).push(readValue(packed, 0, type));
    } else if (type === "map") {
      const entry = /** @type {Record<string, string>} */ (readValue(reader, wireType, type));
      (out[name] ??= {})[entry.key ?? ""] = entry.value ?? "";
    } else if (repeated) {
      (out[name] ??= []).push(readValue(reader, wireType, type));
    } else {
      const value = readValue(reader, wireType, type);
      if (isDefault(value)) delete out[name];
      else out[name] = value;
    }
  }
  return out;
}
