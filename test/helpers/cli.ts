/** Runs the built CLI as a subprocess and captures everything it prints. */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'weir.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
  /** Called once the process started (e.g. to send it a signal later). */
  onSpawn?: (pid: number) => void;
  /** Called with each stdout chunk (e.g. to signal after the first batch). */
  onStdout?: (chunk: string, kill: (signal: NodeJS.Signals) => void) => void;
}

export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const kill = (signal: NodeJS.Signals) => child.kill(signal);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      options.onStdout?.(d.toString(), kill);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    if (child.pid) options.onSpawn?.(child.pid);
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

export function tempDir(prefix = 'weir-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Parses the JSON log lines of stdout (non-JSON lines are ignored). */
export function logLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * `weir run FILE` killed with SIGKILL `kills` times, each at a random moment `fromMs` to
 * `fromMs + spreadMs` after it started, then once more to its end. Returns the last run.
 */
export async function runKilledThenToEnd(
  file: string,
  cwd: string,
  kills: number,
  fromMs: number,
  spreadMs: number,
  expectKilled: (r: CliResult) => void,
): Promise<CliResult> {
  for (let i = 0; i < kills; i++) {
    const after = fromMs + Math.floor(Math.random() * spreadMs);
    const r = await runCli(['run', file], {
      cwd,
      onSpawn: (pid) => {
        setTimeout(() => {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {}
        }, after);
      },
    });
    expectKilled(r);
  }
  return runCli(['run', file], { cwd, timeoutMs: 60_000 });
}
