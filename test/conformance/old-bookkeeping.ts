/**
 * The exactly-once bookkeeping tables exactly as weir created them before one module
 * defined them (mysql/meta.ts at 69b99eb, createMetaTables and createCreatedTable):
 * targets written then must keep resuming. Shared by the recover conformance test and
 * the MySQL upgrade test.
 */

/** The old MySQL DDL of each table; `t` qualifies a table name (e.g. with its database). */
export function oldMysqlBookkeeping(
  t: (name: string) => string,
): Record<'_weir_checkpoints' | '_weir_runs' | '_weir_created_tables', string> {
  return {
    _weir_checkpoints: `CREATE TABLE IF NOT EXISTS ${t('_weir_checkpoints')} (
      pipeline VARCHAR(128) NOT NULL,
      run_id VARCHAR(64) NOT NULL,
      partition_id VARCHAR(191) NOT NULL,
      target VARCHAR(64) NOT NULL,
      rows_written BIGINT NOT NULL,
      message LONGTEXT NOT NULL,
      committed_at DATETIME(6) NOT NULL,
      PRIMARY KEY (pipeline, run_id, partition_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    _weir_runs: `CREATE TABLE IF NOT EXISTS ${t('_weir_runs')} (
      pipeline VARCHAR(128) NOT NULL,
      run_id VARCHAR(64) NOT NULL,
      target VARCHAR(64) NOT NULL,
      mode VARCHAR(16) NOT NULL,
      stage VARCHAR(64) NULL,
      status VARCHAR(16) NOT NULL,
      started_at DATETIME(6) NOT NULL,
      updated_at DATETIME(6) NOT NULL,
      PRIMARY KEY (pipeline, run_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
    _weir_created_tables: `CREATE TABLE IF NOT EXISTS ${t('_weir_created_tables')} (
      pipeline VARCHAR(128) NOT NULL,
      run_id VARCHAR(64) NOT NULL,
      target VARCHAR(64) NOT NULL,
      created_at DATETIME(6) NOT NULL,
      PRIMARY KEY (pipeline, run_id, target)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  };
}
