import fs from 'node:fs';

/**
 * Creates `file` (mode 600) with `content` unless it already exists. The
 * content is written whole under a temporary name and linked into place:
 * link() refuses an existing name, so when two processes start at once the
 * loser keeps the winner's file and nobody ever reads a half-written one.
 * Returns false when the file already existed.
 */
export function createFileExclusive(file: string, content: string): boolean {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  fs.writeFileSync(tmp, content, { mode: 0o600 });
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return false;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}
