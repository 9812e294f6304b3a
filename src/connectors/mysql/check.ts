/**
 * Health checks of the MySQL/MariaDB connector (`weir check`, planner, once):
 * connection, authentication, the table (or query), and the privileges it needs.
 */
import type mysql from 'mysql2/promise';
import type { CheckContext, CheckResult } from '../../sdk/connector.js';
import { errorMessage } from '../../sdk/errors.js';
import { type Conn, classify, connect, driverError, isAuthError, type MysqlOptions, q, release, tableEngine, where } from './db.js';

/** Privileges a sink needs besides SELECT: writing rows, weir's bookkeeping tables, and the swap of `replace`. */
function sinkPrivileges(opts: MysqlOptions): string[] {
  const need = ['INSERT', 'UPDATE', 'DELETE', 'CREATE'];
  if (opts.mode === 'replace') need.push('DROP', 'ALTER');
  return need;
}

/** Privileges of the current user on the table, from global, schema and table grants (not from roles). */
async function privileges(conn: Conn, opts: MysqlOptions): Promise<Set<string>> {
  const [[me]] = await conn.query<mysql.RowDataPacket[]>('SELECT CURRENT_USER() AS u');
  const user = String(me?.u ?? '');
  const at = user.lastIndexOf('@');
  const grantee = `'${user.slice(0, at)}'@'${user.slice(at + 1)}'`;
  const [rows] = await conn.query<mysql.RowDataPacket[]>(
    `SELECT PRIVILEGE_TYPE AS p FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = ?
     UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = ? AND ? LIKE TABLE_SCHEMA
     UNION SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = ? AND TABLE_SCHEMA = ? AND TABLE_NAME = ?`,
    [grantee, grantee, opts.database, grantee, opts.database, opts.table ?? ''],
  );
  return new Set(rows.map((r) => String(r.p).toUpperCase()));
}

/** Runs the checks; `ctx.role` decides whether a missing table and missing write privileges are failures. */
export async function mysqlCheck(opts: MysqlOptions, ctx: CheckContext): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const role = ctx.role;
  let conn: Conn | undefined;
  try {
    conn = await connect(opts, ctx);
  } catch (error) {
    const cause = (error as { cause?: unknown }).cause ?? error;
    if (isAuthError(cause)) {
      results.push({ name: 'connection', ok: true, message: `reached ${opts.host}:${opts.port}` });
      results.push({ name: 'authentication', ok: false, message: `${errorMessage(error)}` });
    } else if (driverError(cause).errno === 1049 || driverError(cause).errno === 1044) {
      results.push({ name: 'connection', ok: true, message: `reached ${opts.host}:${opts.port}` });
      results.push({ name: 'authentication', ok: true, message: `logged in as ${opts.user}` });
      results.push({ name: 'target', ok: false, message: errorMessage(error) });
    } else results.push({ name: 'connection', ok: false, message: errorMessage(error) });
    return results;
  }
  try {
    const [[info]] = await conn.query<mysql.RowDataPacket[]>('SELECT VERSION() AS v, CURRENT_USER() AS u');
    results.push({ name: 'connection', ok: true, message: `connected to ${opts.host}:${opts.port} (server ${String(info?.v)})` });
    results.push({ name: 'authentication', ok: true, message: `logged in as ${String(info?.u)}` });
    if (opts.query) {
      try {
        await conn.query(`SELECT * FROM (${opts.query}) AS _weir_q LIMIT 0`);
        results.push({ name: 'target', ok: true, message: 'the query is valid' });
      } catch (error) {
        results.push({ name: 'target', ok: false, message: `the query fails: ${classify(error, 'query').message}` });
      }
      return results;
    }
    const table = opts.table as string;
    const engine = await tableEngine(conn, opts.database, table);
    if (engine === undefined) {
      if (role === 'source') results.push({ name: 'target', ok: false, message: `table ${opts.database}.${table} does not exist` });
      else results.push({ name: 'target', ok: true, message: `table ${opts.database}.${table} does not exist yet; the sink creates it` });
    } else {
      await conn.query(`SELECT 1 FROM ${q(table)} LIMIT 0`).then(
        () => results.push({ name: 'target', ok: true, message: `table ${opts.database}.${table} exists (${engine})` }),
        (error: unknown) =>
          results.push({ name: 'target', ok: false, message: `cannot read table ${table}: ${classify(error, table).message}` }),
      );
    }
    const have = await privileges(conn, opts);
    const all = have.has('ALL PRIVILEGES') || have.has('ALL');
    const missing = (list: string[]) => (all ? [] : list.filter((p) => !have.has(p)));
    const readMissing = missing(['SELECT']);
    const writeMissing = missing(sinkPrivileges(opts));
    const note = ' (privileges granted through roles are not detected)';
    if (role === 'source' || readMissing.length)
      results.push({
        name: 'privileges',
        ok: readMissing.length === 0,
        message: readMissing.length ? `missing ${readMissing.join(', ')} on ${table}${note}` : `SELECT on ${table}`,
      });
    else
      results.push({
        name: 'privileges',
        ok: writeMissing.length === 0,
        message: writeMissing.length
          ? `missing ${writeMissing.join(', ')} on ${opts.database}${note}`
          : `${['SELECT', ...sinkPrivileges(opts)].join(', ')} on ${opts.database}`,
      });
  } catch (error) {
    results.push({ name: 'target', ok: false, message: classify(error, `checking ${where(opts)}`).message });
  } finally {
    await release(conn);
  }
  return results;
}
