/*
 * The xenstore wire format (Xen io/xs_wire.h, docs/misc/xenstore.txt): message types, limits,
 * frame encoding and an incremental frame decoder, plus the payload helpers every message
 * shape needs. Layer: pure (no I/O; only the host byte order is read from node:os).
 * Invariants: a frame's payload is at most PAYLOAD_MAX bytes in both directions; the decoder
 * never buffers more than one header plus PAYLOAD_MAX bytes, and once it has thrown a
 * ProtocolError it refuses further input (the stream cannot be resynchronised).
 */
import { endianness } from 'node:os';
import { ProtocolError } from './errors.js';

/** Message type numbers (enum xsd_sockmsg_type). */
export const XsType = {
  CONTROL: 0,
  DIRECTORY: 1,
  READ: 2,
  GET_PERMS: 3,
  WATCH: 4,
  UNWATCH: 5,
  TRANSACTION_START: 6,
  TRANSACTION_END: 7,
  INTRODUCE: 8,
  RELEASE: 9,
  GET_DOMAIN_PATH: 10,
  WRITE: 11,
  MKDIR: 12,
  RM: 13,
  SET_PERMS: 14,
  WATCH_EVENT: 15,
  ERROR: 16,
  IS_DOMAIN_INTRODUCED: 17,
  RESUME: 18,
  SET_TARGET: 19,
  RESET_WATCHES: 21,
  DIRECTORY_PART: 22,
} as const;
export type XsTypeName = keyof typeof XsType;
export type XsTypeNumber = (typeof XsType)[XsTypeName];

const typeNames = new Map<number, XsTypeName>(Object.entries(XsType).map(([name, n]) => [n, name as XsTypeName]));

/** The name of a message type number, or undefined for numbers the protocol does not define. */
export function typeName(type: number): XsTypeName | undefined {
  return typeNames.get(type);
}

export const HEADER_SIZE = 16;
/** XENSTORE_PAYLOAD_MAX */
export const PAYLOAD_MAX = 4096;
/** XENSTORE_ABS_PATH_MAX */
export const ABS_PATH_MAX = 3072;
/** XENSTORE_REL_PATH_MAX */
export const REL_PATH_MAX = 2048;

/** One message: header fields plus payload. */
export interface Frame {
  type: number;
  reqId: number;
  txId: number;
  payload: Buffer;
}

const littleEndian = endianness() === 'LE';

function writeU32(buf: Buffer, value: number, offset: number): void {
  if (littleEndian) buf.writeUInt32LE(value, offset);
  else buf.writeUInt32BE(value, offset);
}

function readU32(buf: Buffer, offset: number): number {
  return littleEndian ? buf.readUInt32LE(offset) : buf.readUInt32BE(offset);
}

function checkU32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`expected ${name} to be an unsigned 32-bit integer, got ${String(value)} (${typeof value})`);
  }
}

/**
 * Encodes one frame (header in host byte order, then the payload).
 * @throws RangeError when a header field is not a u32 or the payload exceeds PAYLOAD_MAX.
 */
export function encodeFrame(frame: Frame): Buffer {
  checkU32('type', frame.type);
  checkU32('reqId', frame.reqId);
  checkU32('txId', frame.txId);
  if (frame.payload.length > PAYLOAD_MAX) {
    throw new RangeError(`expected a payload of at most ${PAYLOAD_MAX} bytes, got ${frame.payload.length}`);
  }
  const buf = Buffer.allocUnsafe(HEADER_SIZE + frame.payload.length);
  writeU32(buf, frame.type, 0);
  writeU32(buf, frame.reqId, 4);
  writeU32(buf, frame.txId, 8);
  writeU32(buf, frame.payload.length, 12);
  frame.payload.copy(buf, HEADER_SIZE);
  return buf;
}

/**
 * Turns a byte stream, split anywhere, into frames. `push` returns the frames completed by
 * the chunk. A length over PAYLOAD_MAX or an undefined type number is a ProtocolError; after
 * one, every later push throws again.
 */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0);
  private failure: ProtocolError | undefined;

  /** Bytes held while waiting for the rest of a frame (at most HEADER_SIZE + PAYLOAD_MAX). */
  get buffered(): number {
    return this.pending.length;
  }

  push(chunk: Buffer): Frame[] {
    if (this.failure) throw this.failure;
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: Frame[] = [];
    while (buf.length >= HEADER_SIZE) {
      const type = readU32(buf, 0);
      const len = readU32(buf, 12);
      if (typeName(type) === undefined) {
        this.failure = new ProtocolError(`unknown message type ${type} in a header`);
        break;
      }
      if (len > PAYLOAD_MAX) {
        this.failure = new ProtocolError(`header announces a ${len}-byte payload; the limit is ${PAYLOAD_MAX}`);
        break;
      }
      if (buf.length < HEADER_SIZE + len) break;
      frames.push({
        type,
        reqId: readU32(buf, 4),
        txId: readU32(buf, 8),
        payload: Buffer.from(buf.subarray(HEADER_SIZE, HEADER_SIZE + len)),
      });
      buf = buf.subarray(HEADER_SIZE + len);
    }
    if (this.failure) {
      this.pending = Buffer.alloc(0);
      throw this.failure;
    }
    this.pending = Buffer.from(buf);
    return frames;
  }
}

/** Builds a payload of NUL-terminated strings: nulTerminated('a', 'b') = "a\0b\0". */
export function nulTerminated(...parts: string[]): Buffer {
  return Buffer.from(parts.map((p) => `${p}\0`).join(''), 'utf8');
}

/** Splits "a\0b\0" into ['a', 'b']; a missing final NUL is tolerated. */
export function splitNulStrings(payload: Buffer): string[] {
  if (payload.length === 0) return [];
  const text = payload.toString('utf8');
  const parts = text.split('\0');
  if (parts[parts.length - 1] === '') parts.pop();
  return parts;
}

/** The first NUL-terminated string of a payload (the whole payload when there is no NUL). */
export function firstString(payload: Buffer): string {
  const end = payload.indexOf(0);
  return payload.toString('utf8', 0, end === -1 ? payload.length : end);
}

/** Splits a payload at its first NUL: WRITE's "path\0value" where value is binary. */
export function splitAtFirstNul(payload: Buffer): [string, Buffer] | undefined {
  const end = payload.indexOf(0);
  if (end === -1) return undefined;
  return [payload.toString('utf8', 0, end), payload.subarray(end + 1)];
}
