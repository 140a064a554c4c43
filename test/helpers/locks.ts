import type postgres from 'postgres';

/**
 * Runs `take` in a transaction of `owner` and keeps that transaction open, with
 * whatever locks `take` acquired, until the returned `release` is called (as a
 * slow or stuck writer would). Resolves once the locks are held.
 */
export async function holdInTransaction(owner: postgres.Sql, take: (sql: postgres.TransactionSql) => Promise<unknown>): Promise<() => Promise<void>> {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let taken!: () => void;
  let failed!: (e: unknown) => void;
  const ready = new Promise<void>((resolve, reject) => {
    taken = resolve;
    failed = reject;
  });
  const tx = owner
    .begin(async (sql) => {
      await take(sql);
      taken();
      await held;
    })
    .catch((e: unknown) => failed(e));
  await ready;
  return async () => {
    release();
    await tx;
  };
}
