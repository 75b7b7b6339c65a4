// Real redis-server and nginx processes on loopback ports, started and stopped by a test or the
// scale benchmark (Debian's packages; scripts/test.sh installs them when missing).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nginxConf } from "../../scripts/nginx-conf.ts";

export interface Service {
  port: number;
  proc: ReturnType<typeof Bun.spawn>;
  stop(): Promise<void>;
}

/** A TCP port free on 127.0.0.1 now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForPort(
  port: number,
  proc: ReturnType<typeof Bun.spawn>,
  what: string,
  log: string,
): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) break;
    try {
      const s = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      s.end();
      return;
    } catch {
      await Bun.sleep(50);
    }
  }
  proc.kill("SIGKILL");
  await proc.exited;
  const err = await Bun.file(log)
    .text()
    .catch(() => "");
  throw new Error(`${what} did not start on port ${port}: ${err.slice(0, 2000)}`);
}

function which(cmd: string, fallbacks: string[]): string {
  const found = Bun.which(cmd) ?? fallbacks.find((p) => Bun.file(p).size > 0);
  if (!found)
    throw new Error(`${cmd} is not installed (apt-get install redis-server nginx; scripts/test.sh does)`);
  return found;
}

/** redis-server on a free loopback port, in memory only (no RDB/AOF files). */
export async function startRedis(port?: number): Promise<Service> {
  const p = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "hearth-redis-"));
  const proc = Bun.spawn(
    [
      which("redis-server", ["/usr/bin/redis-server"]),
      "--port",
      String(p),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      dir,
    ],
    { stdout: Bun.file(join(dir, "redis.log")), stderr: Bun.file(join(dir, "redis.log")) },
  );
  await waitForPort(p, proc, "redis-server", join(dir, "redis.log"));
  return {
    port: p,
    proc,
    async stop() {
      proc.kill("SIGKILL");
      await proc.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** nginx (config from scripts/nginx-conf.ts) on a free loopback port in front of `replicas`. */
export async function startNginx(replicas: readonly string[], failTimeoutS = 10): Promise<Service> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "hearth-nginx-"));
  const conf = join(dir, "nginx.conf");
  writeFileSync(
    conf,
    nginxConf({ listen: `127.0.0.1:${port}`, replicas, tempDir: dir, upstreamHeader: true, failTimeoutS }),
  );
  const proc = Bun.spawn(
    [which("nginx", ["/usr/sbin/nginx"]), "-p", dir, "-c", conf, "-e", "stderr", "-g", "daemon off;"],
    { stdout: "ignore", stderr: Bun.file(join(dir, "stderr.log")) },
  );
  await waitForPort(port, proc, "nginx", join(dir, "stderr.log"));
  return {
    port,
    proc,
    async stop() {
      proc.kill("SIGQUIT");
      const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await proc.exited;
      clearTimeout(t);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
