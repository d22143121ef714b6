// Types of channel-sides.mjs for the TypeScript programs that import it (test/e2e/node).
export interface ChannelSide {
  onData(listener: (chunk: Buffer) => void): void;
  write(data: Buffer): Promise<void>;
  close(): Promise<void>;
}
export function openRawDevice(tty: string, setRawMode: (fd: number, tty: string) => Promise<void>): Promise<ChannelSide>;
export function openStream<O>(
  openChannel: (name: string, options?: O) => Promise<NodeJS.ReadWriteStream>,
  name: string,
  options?: O,
): Promise<ChannelSide>;
export function median(xs: readonly number[]): number;
export function echoMeasure(side: ChannelSide, bytes: number, trips: number): Promise<{ echoMiBps: number; rttMs: number }>;
