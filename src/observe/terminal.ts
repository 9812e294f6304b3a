/**
 * The terminal, as people read it: log lines (stdout) and the live progress line
 * (stderr) share one screen, so they are written through one {@link Terminal}: the
 * progress line is cleared before each log line and drawn again below it, so no
 * progress text is ever glued to a log line, and the progress line stays last.
 *
 * Log lines on a terminal are short and human (`19:40:01 INFO  partition 3 committed:
 * …`), cut to the terminal's width; their JSON payload goes to `--log-format json` or
 * `--log-file`. Colours follow NO_COLOR (https://no-color.org) and FORCE_COLOR.
 */

/** Whether to colour what goes to `stream`: NO_COLOR wins, then FORCE_COLOR, then whether it is a terminal. */
export function useColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.FORCE_COLOR !== undefined) return env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  return Boolean(stream.isTTY);
}

const CLEAR_LINE = '\r\x1b[2K';

/** Cuts `text` to `width` columns (code points; an ellipsis marks the cut). */
export function fitWidth(text: string, width: number | undefined): string {
  if (!width || width < 8) return text;
  const chars = Array.from(text);
  return chars.length <= width ? text : `${chars.slice(0, width - 1).join('')}…`;
}

export interface TerminalStreams {
  /** Where log lines go (stdout). */
  out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Where the progress line goes (stderr); when absent, there is no progress line. */
  status?: (NodeJS.WritableStream & { isTTY?: boolean; columns?: number }) | undefined;
}

export class Terminal {
  private shown = '';

  constructor(private readonly streams: TerminalStreams) {}

  /** Whether log lines and the progress line share one screen (both are terminals). */
  private get shared(): boolean {
    return Boolean(this.streams.status?.isTTY && this.streams.out.isTTY);
  }

  /** Columns of the log stream's terminal, when it is one. */
  get width(): number | undefined {
    return this.streams.out.isTTY ? this.streams.out.columns : undefined;
  }

  /** Writes one log line, clearing the progress line first and drawing it again after. */
  line(text: string): void {
    const redraw = this.shown !== '' && this.shared;
    if (redraw) this.streams.status?.write(CLEAR_LINE);
    this.streams.out.write(text.endsWith('\n') ? text : `${text}\n`);
    if (redraw) this.streams.status?.write(this.shown);
  }

  /** Draws (or replaces) the progress line. */
  status(text: string): void {
    const s = this.streams.status;
    if (!s) return;
    this.shown = `  ${fitWidth(text, s.isTTY && s.columns ? s.columns - 3 : undefined)}`;
    s.write(`${CLEAR_LINE}${this.shown}`);
  }

  /** Removes the progress line (before the summary). */
  clearStatus(): void {
    if (this.shown === '') return;
    this.streams.status?.write(CLEAR_LINE);
    this.shown = '';
  }
}

const LEVELS: Record<string, { name: string; color: string }> = {
  trace: { name: 'TRACE', color: '\x1b[90m' },
  debug: { name: 'DEBUG', color: '\x1b[36m' },
  info: { name: 'INFO ', color: '\x1b[32m' },
  warn: { name: 'WARN ', color: '\x1b[33m' },
  error: { name: 'ERROR', color: '\x1b[31m' },
  fatal: { name: 'FATAL', color: '\x1b[35m' },
};

/**
 * One JSON log line as a person reads it: time, level, message; for warnings and errors
 * the error message when the message does not already hold it. Never the payload.
 */
export function humanLine(json: string, color: boolean, width: number | undefined): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.trimEnd();
  }
  const time = typeof o.time === 'string' ? o.time.slice(11, 19) : '';
  const level = LEVELS[String(o.level)] ?? { name: String(o.level).toUpperCase().padEnd(5), color: '' };
  let msg = typeof o.msg === 'string' ? o.msg : '';
  const error = typeof o.error_message === 'string' ? o.error_message : undefined;
  if (error && !msg.includes(error) && (o.level === 'warn' || o.level === 'error' || o.level === 'fatal')) msg += `: ${error}`;
  const partition = typeof o.partition_id === 'string' && !msg.includes(`partition ${o.partition_id}`) ? `[${o.partition_id}] ` : '';
  const plain = `${time} ${level.name} ${partition}${msg}`.replace(/\s*\n\s*/g, ' ');
  const cut = fitWidth(plain, width);
  if (!color) return cut;
  const head = `${time} ${level.name}`;
  return cut.startsWith(head) ? `\x1b[90m${time}\x1b[0m ${level.color}${level.name}\x1b[0m${cut.slice(head.length)}` : cut;
}
