import { sql } from 'drizzle-orm';
import type { Db } from './tenancy.js';

/**
 * Runs `fn` in a savepoint of the request transaction: a failed statement (an exclusion or unique violation, say)
 * rolls back only what `fn` did, and the transaction stays usable for the error's audit and the rest of the request.
 */
export async function inSavepoint<T>(db: Db, fn: () => Promise<T>): Promise<T> {
  const name = `sp_${Math.random().toString(36).slice(2, 10)}`;
  await db.execute(sql.raw(`savepoint ${name}`));
  try {
    const out = await fn();
    await db.execute(sql.raw(`release savepoint ${name}`));
    return out;
  } catch (e) {
    await db.execute(sql.raw(`rollback to savepoint ${name}`));
    throw e;
  }
}
