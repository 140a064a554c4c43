/**
 * Waits for `work` to settle, at most `ms`: resolves true when it settled in
 * time (fulfilled or rejected; a rejection is the caller's to handle on
 * `work`), false on timeout. Shutdown uses it so that no stage can hold the
 * process forever.
 */
export async function settledWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  try {
    return await Promise.race([work.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
