// One server per SSD tier directory: a lock file holding the owner's pid, taken over when stale.
// Two processes writing the same slab files would overwrite each other's pages (the checksums
// would catch it, but every page would be a miss), so a second server must not share a directory.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

export class KvDirBusyError extends Error {
  override name = "KvDirBusyError";
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes `<dir>/lock` (creating `dir`); returns the function that releases it (nothing to take on
 * a read-only file system). Throws
 * KvDirBusyError when a live process holds it, and the fs error when the directory is unusable.
 */
export function lockKvDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o644);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(path, "utf8").trim() === String(process.pid)) rmSync(path);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (err) {
      // A read-only directory: no process can write its files, so sharing it is harmless; the
      // tier reads what is there and counts its writes as read-only faults.
      if ((err as NodeJS.ErrnoException).code === "EROFS") return () => {};
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    let owner = Number.NaN;
    try {
      owner = Number.parseInt(readFileSync(path, "utf8"), 10);
    } catch {
      // Vanished or unreadable: treat as stale.
    }
    if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && alive(owner))
      throw new KvDirBusyError(`${dir} is in use by another hearth process (pid ${owner})`);
    // A crashed owner left it behind.
    rmSync(path, { force: true });
  }
  throw new KvDirBusyError(`cannot take the lock ${path}`);
}
