// Starts `hearth serve` as a child process and waits for the line that gives its address.
import { resolve } from "node:path";

const root = resolve(import.meta.dir, "..");

export interface RunningServer {
  url: string;
  proc: ReturnType<typeof Bun.spawn>;
  stop(): Promise<void>;
}

/**
 * Starts `hearth serve -m MODEL --port 0 FLAGS...` from this checkout (src/cli/main.ts under the
 * running Bun) on a free port and waits for it to listen.
 */
export function startCheckoutServer(
  modelPath: string,
  flags: string[],
  env: Record<string, string> = {},
): Promise<RunningServer> {
  return startServer(
    [process.execPath, "src/cli/main.ts", "serve", "-m", modelPath, "--port", "0", ...flags],
    root,
    env,
  );
}

/** Starts `hearth serve` (cmd, run in cwd) and waits for its "listening on" line. */
export async function startServer(
  cmd: string[],
  cwd = root,
  env: Record<string, string> = {},
): Promise<RunningServer> {
  const proc = Bun.spawn(cmd, { cwd, stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  let seen = "";
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += new TextDecoder().decode(value);
    const m = /listening on (http:\/\/[^\s]+)/.exec(seen);
    if (m) {
      // Keep draining stdout so the child never blocks on a full pipe.
      (async () => {
        for (;;) if ((await reader.read()).done) break;
      })();
      return {
        url: m[1] as string,
        proc,
        async stop() {
          proc.kill("SIGTERM");
          await proc.exited;
        },
      };
    }
  }
  proc.kill();
  throw new Error(`server did not start: ${seen}${await new Response(proc.stderr as ReadableStream).text()}`);
}
