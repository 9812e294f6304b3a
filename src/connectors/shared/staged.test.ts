import { link, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WeirError } from '../../sdk/errors.js';
import { silentLog, tempDir } from '../../sdk/testing.js';
import type { JsonValue } from '../../sdk/types.js';
import { abortStaged, type CommitPlan, commitStaged, parseMessages, StagedFile, stagingName } from './staged.js';

let dir: string;
beforeEach(async () => {
  dir = await tempDir('weir-staged-');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function stage(target: string, id: string, text: string, runId = 'run-1') {
  const file = await StagedFile.open(target, id, runId, 'test sink');
  await file.append(Buffer.from(text), text.split('\n').length - 1);
  return file.commit();
}

const plan = (target: string, parts: CommitPlan['parts'], extra: Partial<CommitPlan> = {}): CommitPlan => ({
  who: 'test sink',
  target,
  mode: 'append',
  parts,
  runId: 'run-1',
  log: silentLog,
  ...extra,
});

describe('staged commit protocol', () => {
  it('overwrites a partial write when a batch is retried', async () => {
    const target = join(dir, 'out.txt');
    const file = await StagedFile.open(target, '0', 'run-1', 'test sink');
    await file.append(Buffer.from('a\n'), 1);
    const retried = Buffer.from('b\n');
    await file.append(retried, 1);
    // pretend the first try of the next batch failed after writing, then the retry succeeded
    (file as unknown as { position: number }).position -= retried.length;
    await file.append(retried, 0);
    const message = await file.commit();
    expect(await readFile(message.tmp, 'utf8')).toBe('a\nb\n');
  });

  it('finishes an interrupted commit without appending twice', async () => {
    const target = join(dir, 'out.txt');
    await writeFile(target, 'old\n');
    const parts = parseMessages([await stage(target, '1', 'b\n'), await stage(target, '0', 'a\n')], 'test sink');
    expect(parts.map((p) => p.partition)).toEqual(['0', '1']);
    await commitStaged(plan(target, parts));
    expect(await readFile(target, 'utf8')).toBe('old\na\nb\n');
    // replay a crash after the rename, before the cleanup: the commit record and temporary files are still there
    await writeFile(
      `${target}.weir-commit`,
      JSON.stringify({ tmps: parts.map((p) => p.tmp), staging: stagingName(target, 'run-1', 'job') }),
    );
    for (const p of parts) await writeFile(p.tmp, 'x\n');
    await commitStaged(plan(target, parts));
    expect(await readFile(target, 'utf8')).toBe('old\na\nb\n');
    expect((await readdir(dir)).sort()).toEqual(['out.txt']);
  });

  it('finishes an interrupted commit whose rename did not happen', async () => {
    const target = join(dir, 'out.txt');
    const parts = parseMessages([await stage(target, '0', 'a\n')], 'test sink');
    const staging = stagingName(target, 'run-1', 'job');
    await writeFile(staging, 'staged\n');
    await writeFile(`${target}.weir-commit`, JSON.stringify({ tmps: parts.map((p) => p.tmp), staging }));
    await commitStaged(plan(target, parts));
    expect(await readFile(target, 'utf8')).toBe('staged\n');
    expect(await readdir(dir)).toEqual(['out.txt']);
  });

  it('publishes a new target from the first part itself (no copy), the other parts after it without their headers', async () => {
    const target = join(dir, 'out.csv');
    const header = Buffer.from('id,name\n');
    const staged = async (id: string, text: string) => {
      const file = await StagedFile.open(target, id, 'run-1', 'test sink');
      await file.writeHeader(header);
      await file.append(Buffer.from(text), 1);
      return file.commit();
    };
    const parts = parseMessages([await staged('0', '1,a\n'), await staged('1', '2,b\n'), await staged('2', '3,c\n')], 'test sink');
    expect(parts.map((p) => p.headerBytes)).toEqual([8, 8, 8]);
    const first = await stat(parts[0]?.tmp as string);
    await commitStaged(plan(target, parts, { mode: 'overwrite', header }));
    expect(await readFile(target, 'utf8')).toBe('id,name\n1,a\n2,b\n3,c\n');
    expect((await stat(target)).ino).toBe(first.ino);
    expect((await stat(target)).nlink).toBe(1);
    expect(await readdir(dir)).toEqual(['out.csv']);
  });

  it('copies when the first part does not start with the header (an empty partition) or the target has rows to keep', async () => {
    const target = join(dir, 'out.csv');
    const header = Buffer.from('id\n');
    const empty = await (await StagedFile.open(target, '0', 'run-1', 'test sink')).commit();
    const file = await StagedFile.open(target, '1', 'run-1', 'test sink');
    await file.writeHeader(header);
    await file.append(Buffer.from('2\n'), 1);
    const parts = parseMessages([empty, await file.commit()], 'test sink');
    await commitStaged(plan(target, parts, { mode: 'overwrite', header }));
    expect(await readFile(target, 'utf8')).toBe('id\n2\n');
    const again = await StagedFile.open(target, '0', 'run-2', 'test sink');
    await again.writeHeader(header);
    await again.append(Buffer.from('3\n'), 1);
    await commitStaged(plan(target, parseMessages([await again.commit()], 'test sink'), { runId: 'run-2', header }));
    expect(await readFile(target, 'utf8')).toBe('id\n2\n3\n');
  });

  it('a commit that crashed while writing onto the first part is done again once: the part is cut back to what its writer committed', async () => {
    const target = join(dir, 'out.txt');
    const parts = parseMessages([await stage(target, '0', 'a\n'), await stage(target, '1', 'b\n')], 'test sink');
    const first = parts[0]?.tmp as string;
    // the crash: a second link to the first part under a staging name, part of the second part written onto it, no record
    await link(first, stagingName(target, 'run-1', 'job'));
    await writeFile(first, 'a\nb', { flag: 'a' });
    await commitStaged(plan(target, parts, { mode: 'overwrite' }));
    expect(await readFile(target, 'utf8')).toBe('a\nb\n');
    expect(await readdir(dir)).toEqual(['out.txt']);
  });

  it('refuses a temporary file shorter than its writer committed, and publishes nothing', async () => {
    const target = join(dir, 'out.txt');
    const parts = parseMessages([await stage(target, '0', 'abc\n')], 'test sink');
    await writeFile(parts[0]?.tmp as string, 'a');
    const error = await commitStaged(plan(target, parts, { mode: 'overwrite' })).catch((e: unknown) => e);
    expect((error as WeirError).code).toBe('commit_file_changed');
    expect((error as Error).message).toContain('fewer than the 4 its writer committed');
    await expect(stat(target)).rejects.toThrow();
  });

  it('rejects a commit message whose lengths are not lengths', () => {
    const m = { partition: '0', tmp: join(dir, 'x'), rows: 1, bytes: 4 };
    const bads: Record<string, JsonValue>[] = [{ bytes: -1 }, { bytes: 1.5 }, { bytes: '4' }, { headerBytes: 5 }, { headerBytes: -1 }];
    for (const bad of bads) expect(() => parseMessages([{ ...m, ...bad }], 'test sink')).toThrow(/unexpected commit message/);
    expect(parseMessages([{ ...m, headerBytes: 4 }], 'test sink')).toHaveLength(1);
  });

  it('ignores a stale commit record of another job', async () => {
    const target = join(dir, 'out.txt');
    await writeFile(`${target}.weir-commit`, JSON.stringify({ tmps: ['/elsewhere/x.tmp'], staging: '/elsewhere/y' }));
    await writeFile(stagingName(target, 'run-1', 'job'), 'half');
    const parts = parseMessages([await stage(target, '0', 'a\n')], 'test sink');
    await commitStaged(plan(target, parts, { mode: 'overwrite', header: Buffer.from('h\n') }));
    expect(await readFile(target, 'utf8')).toBe('h\na\n');
    expect(await readdir(dir)).toEqual(['out.txt']);
  });

  it('refuses to commit when a temporary file is gone and the target was never written', async () => {
    const target = join(dir, 'out.txt');
    const parts = parseMessages([await stage(target, '0', 'a\n'), await stage(target, '1', 'b\n')], 'test sink');
    await rm(parts[1]?.tmp as string);
    const error = await commitStaged(plan(target, parts)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WeirError);
    expect(error).toMatchObject({ code: 'commit_files_missing' });
  });

  it('rejects foreign commit messages, except leniently', async () => {
    expect(() => parseMessages([{ partition_id: '0', rows: 1 }], 'test sink')).toThrow(/unexpected commit message/);
    expect(parseMessages([null, 1], 'test sink', { lenient: true })).toEqual([]);
  });

  it('abort sweeps temporary files of this run only', async () => {
    const target = join(dir, 'out.txt');
    await stage(target, '0', 'a\n');
    const other = await stage(target, '0', 'b\n', 'run-2');
    // `mine` is not listed in the messages (its writer crashed): the sweep finds it by the run tag
    await abortStaged({ who: 'test sink', target, parts: [], runId: 'run-1', log: silentLog });
    expect(await readdir(dir)).toEqual([other.tmp.slice(dir.length + 1)]);
  });

  it('a commit or abort whose message names anything but a temporary file of this run reads and deletes nothing', async () => {
    const target = join(dir, 'out.txt');
    const good = await stage(target, '0', 'a\n');
    const victim = join(dir, 'victim');
    const foreign = [
      victim, // beside the target, not weir's name
      join(dir, '..', 'out.txt.0.00000000-0011223344556677.tmp'), // another directory
      `${dir}/./${good.tmp.slice(dir.length + 1)}`, // not a normal path
      (await stage(target, '0', 'b\n', 'run-2')).tmp, // another run's
      good.tmp.replace('out.txt.0.', 'out.txt.1.'), // another partition's name
    ];
    await writeFile(victim, 'victim\n');
    for (const tmp of foreign) {
      const parts = [{ ...good, tmp }];
      await expect(commitStaged(plan(target, parts))).rejects.toMatchObject({ code: 'foreign_staging_path', kind: 'connector' });
      await expect(abortStaged({ ...plan(target, parts) })).rejects.toThrow(/is not a staging file of .*out\.txt in this run/);
    }
    expect(await readFile(victim, 'utf8')).toBe('victim\n');
    expect(await readFile(good.tmp, 'utf8')).toBe('a\n');
    await expect(stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a commit record that is a link is ignored, one naming a foreign staging file is refused', async () => {
    const target = join(dir, 'out.txt');
    const victim = join(dir, 'victim');
    await writeFile(victim, JSON.stringify({ tmps: [], staging: victim }));
    const parts = parseMessages([await stage(target, '0', 'a\n')], 'test sink');
    await writeFile(`${target}.weir-commit`, JSON.stringify({ tmps: parts.map((p) => p.tmp), staging: victim }));
    await expect(commitStaged(plan(target, parts))).rejects.toThrow(/the commit record .* names .*victim.*, which is not a staging file/);
    await rm(`${target}.weir-commit`);
    await symlink(victim, `${target}.weir-commit`);
    await commitStaged(plan(target, parts));
    expect(await readFile(target, 'utf8')).toBe('a\n');
    expect(await readFile(victim, 'utf8')).toBe(JSON.stringify({ tmps: [], staging: victim }));
    expect((await readdir(dir)).sort()).toEqual(['out.txt', 'victim']);
  });

  it('ownerOnly: temporary and new target files are 0600; otherwise the umask decides', async () => {
    const mode = async (p: string) => (await stat(p)).mode & 0o777;
    const priv = join(dir, 'private.jsonl');
    const file = await StagedFile.open(priv, '0', 'run-1', 'test sink', { ownerOnly: true });
    await file.append(Buffer.from('a\n'), 1);
    const message = await file.commit();
    expect(await mode(message.tmp)).toBe(0o600);
    await commitStaged(plan(priv, [message], { ownerOnly: true }));
    expect(await mode(priv)).toBe(0o600);
    const open = join(dir, 'open.jsonl');
    await commitStaged(plan(open, [await stage(open, '0', 'a\n')]));
    expect(await mode(open)).toBe(0o666 & ~process.umask());
  });
});
