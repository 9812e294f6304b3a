/**
 * Health checks for `weir check` (planner, once per command): the server is
 * reachable, the credentials are accepted, and the table exists with the
 * privileges a source (SELECT) or a sink (INSERT, or CREATE on the schema when
 * the table is still to be created) needs. Never prints the password.
 */
import { Socket } from 'node:net';
import type { CheckContext, CheckResult } from '../../sdk/connector.js';
import { errorMessage } from '../../sdk/errors.js';
import { type ConnectOptions, connect, endQuietly, qualified, target } from './client.js';
import { CHECKPOINTS_TABLE } from './sink.js';
import type { PostgresOptions } from './spec.js';

function reach(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (problem: string | undefined) => {
      socket.destroy();
      resolve(problem);
    };
    socket.setTimeout(timeoutMs, () => done(`no answer within ${timeoutMs} ms`));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message));
    socket.connect(port, host, () => done(undefined));
  });
}

export async function postgresCheck(opts: PostgresOptions, ctx: CheckContext): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const where = target(opts);
  const problem = await reach(opts.host, opts.port, opts.connect_timeout);
  if (problem) {
    results.push({
      name: 'connection',
      ok: false,
      message: `cannot reach ${opts.host}:${opts.port} (${problem}); check host, port and firewalls`,
    });
    return results;
  }
  results.push({ name: 'connection', ok: true, message: `${opts.host}:${opts.port} is reachable` });

  const c: ConnectOptions = { baseDir: ctx.baseDir, log: ctx.log, role: 'check' };
  let client: Awaited<ReturnType<typeof connect>>;
  try {
    client = await connect(opts, c);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === '3D000') {
      results.push({ name: 'authentication', ok: true, message: `user ${opts.user} accepted` });
      results.push({
        name: 'target',
        ok: false,
        message: `database ${opts.database} does not exist on ${opts.host}:${opts.port}; check database`,
      });
    } else if (code === '28P01' || code === '28000') {
      results.push({ name: 'authentication', ok: false, message: errorMessage(error) });
    } else if (/SSL|TLS|certificate/i.test(errorMessage(error))) {
      results.push({
        name: 'tls',
        ok: false,
        message: `TLS with ${opts.host}:${opts.port} failed: ${errorMessage(error)}; check ssl_enabled and the certificate options`,
      });
    } else {
      results.push({
        name: 'authentication',
        ok: false,
        message: `connected to ${opts.host}:${opts.port} but could not log in: ${errorMessage(error)}`,
      });
    }
    return results;
  }

  try {
    const v = await client.query<{ v: string; u: string }>("SELECT current_setting('server_version') AS v, current_user AS u");
    results.push({ name: 'authentication', ok: true, message: `logged in to ${where} as ${v.rows[0]?.u} (PostgreSQL ${v.rows[0]?.v})` });
    results.push(await targetCheck(client, opts, ctx.role));
  } catch (error) {
    results.push({ name: 'target', ok: false, message: errorMessage(error) });
  } finally {
    await endQuietly(client);
  }
  return results;
}

async function targetCheck(
  client: Awaited<ReturnType<typeof connect>>,
  opts: PostgresOptions,
  role: 'source' | 'sink',
): Promise<CheckResult> {
  if (opts.query) {
    try {
      await client.query(`SELECT * FROM (${opts.query.trim().replace(/;+\s*$/, '')}) AS _weir_q LIMIT 0`);
      return { name: 'target', ok: true, message: 'the source query is valid and readable' };
    } catch (error) {
      return { name: 'target', ok: false, message: `the source query fails: ${errorMessage(error)}` };
    }
  }
  const table = qualified(opts.schema, opts.table as string);
  const name = `${opts.schema}.${opts.table}`;
  const r = await client
    .query<Record<string, boolean | null>>(
      `SELECT to_regclass($1) IS NOT NULL AS exists,
            has_schema_privilege($2, 'USAGE') AS usage, has_schema_privilege($2, 'CREATE') AS create,
            CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE has_table_privilege($1, 'SELECT') END AS select,
            CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE has_table_privilege($1, 'INSERT') END AS insert,
            CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE has_table_privilege($1, 'UPDATE') END AS update,
            CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE has_table_privilege($1, 'TRUNCATE') END AS truncate,
            CASE WHEN to_regclass($3) IS NULL THEN NULL ELSE has_table_privilege($3, 'INSERT') END AS checkpoint`,
      [table, opts.schema, qualified(opts.schema, CHECKPOINTS_TABLE)],
    )
    .catch(async (error: { code?: string }) => {
      if (error.code === '3F000') return { rows: [{ schemaMissing: true } as Record<string, boolean | null>] };
      throw error;
    });
  const p: Record<string, boolean | null> = r.rows[0] ?? {};
  if (p.schemaMissing) return { name: 'target', ok: false, message: `schema ${opts.schema} does not exist; check schema` };
  if (!p.usage)
    return {
      name: 'target',
      ok: false,
      message: `user ${opts.user} has no USAGE privilege on schema ${opts.schema}; GRANT USAGE ON SCHEMA ${opts.schema} TO ${opts.user}`,
    };

  if (role === 'source') {
    if (!p.exists) return { name: 'target', ok: false, message: `table ${name} does not exist; check table and schema` };
    if (!p.select)
      return { name: 'target', ok: false, message: `user ${opts.user} lacks SELECT on ${name}; GRANT SELECT ON ${name} TO ${opts.user}` };
    return { name: 'target', ok: true, message: `${name} exists and is readable` };
  }
  if (!p.exists && !opts.create_table)
    return {
      name: 'target',
      ok: false,
      message: `table ${name} does not exist and create_table is false; create it or set create_table: true`,
    };
  const missing: string[] = [];
  if (!p.exists && !p.create) missing.push(`CREATE on schema ${opts.schema} (to create ${name})`);
  if (p.exists && !p.insert) missing.push(`INSERT on ${name}`);
  if (p.exists && opts.mode === 'upsert' && !p.update) missing.push(`UPDATE on ${name} (mode upsert)`);
  if (p.exists && opts.mode === 'replace' && !p.truncate) missing.push(`TRUNCATE on ${name} (mode replace)`);
  if (opts.mode === 'replace' && p.exists && !p.create) missing.push(`CREATE on schema ${opts.schema} (for the staging table)`);
  if (p.checkpoint === null && !p.create) missing.push(`CREATE on schema ${opts.schema} (for ${CHECKPOINTS_TABLE})`);
  if (p.checkpoint === false) missing.push(`INSERT on ${opts.schema}.${CHECKPOINTS_TABLE}`);
  if (missing.length)
    return { name: 'target', ok: false, message: `user ${opts.user} lacks ${missing.join(', ')}; GRANT them to write to ${name}` };
  return {
    name: 'target',
    ok: true,
    message: p.exists ? `${name} exists and is writable` : `${name} does not exist yet; it will be created`,
  };
}
