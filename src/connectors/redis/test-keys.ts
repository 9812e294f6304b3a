/** Test helper: a connection for checking what the sink wrote, and the cleanup of a test's keys. */
import { Redis } from 'ioredis';

/** Connects to the local server (tests only). */
export async function adminClient(): Promise<Redis> {
  const admin = new Redis({ host: '127.0.0.1', lazyConnect: true });
  await admin.connect();
  return admin;
}

/** Deletes every key under `prefix` (SCAN + UNLINK, never FLUSHDB) and disconnects. */
export async function dropKeysAndClose(admin: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await admin.unlink(...keys);
  } while (cursor !== '0');
  admin.disconnect();
}
