// Helpers shared by the feature measurements (features.mjs and its parts): settings
// from the environment, percentiles, timing, API calls without the client, and the
// host's view of a sandbox's memory.
import { existsSync, readFileSync, readdirSync } from 'node:fs'

const env = process.env
export const API = env.E2B_API_URL
export const SANDBOX_URL = env.E2B_SANDBOX_URL
export const KEY = env.E2B_API_KEY

/** The positive integer in the environment variable name, or def. */
export function count(name, def) {
  const v = Number(env[name] || def)
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name}=${env[name]}: want a positive integer`)
  return v
}

export const log = (...a) => console.error('[features]', ...a)
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** p-th percentile (nearest rank) of xs. */
export function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]
}
export const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d
/** p50, p99 and the count of xs (milliseconds). */
export const dist = (xs) => ({ p50: round(pct(xs, 50), 3), p99: round(pct(xs, 99), 3), n: xs.length })

/** Times one call of fn in milliseconds; returns [ms, its value]. */
export async function timed(fn) {
  const t0 = performance.now()
  const v = await fn()
  return [performance.now() - t0, v]
}

/** Calls the API as the clients do; returns the parsed JSON body (or null) and fails on an unexpected status. */
export async function api(method, path, want, body, timeoutMs = 120_000) {
  const res = await fetch(new URL(path, API), {
    method,
    headers: { 'X-API-Key': KEY, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  })
  const text = await res.text()
  if (!want.includes(res.status)) throw new Error(`${method} ${path}: ${res.status} ${text}`)
  return text ? JSON.parse(text) : null
}

/** Kills sandboxes through the API; a missing one is no error. */
export async function kill(...ids) {
  for (const id of ids) await api('DELETE', `/sandboxes/${id}`, [204, 404])
}

/** Runs cmd in sbx and fails unless it exits 0; returns its trimmed stdout. */
export async function run(sbx, cmd, timeoutMs = 60_000) {
  const r = await sbx.commands.run(cmd, { timeoutMs })
  if (r.exitCode !== 0) throw new Error(`${cmd}: exit ${r.exitCode}: ${r.stderr}`)
  return r.stdout.trim()
}

/** The host's MemAvailable in bytes. */
export function memAvailable() {
  const m = readFileSync('/proc/meminfo', 'utf8').match(/^MemAvailable:\s+(\d+) kB/m)
  if (!m) throw new Error('/proc/meminfo: no MemAvailable line')
  return Number(m[1]) * 1024
}

/**
 * The runtime's id of sandbox id, which names its cgroup: a sandbox taken from the
 * warm pool keeps the pool's id, and its record stays in the pool's directory. Both
 * are read from the node's records under the server's data directory
 * (BENCH_FEATURES_DATA_DIR); without it, the sandbox's own id.
 */
function runtimeID(id) {
  const dir = env.BENCH_FEATURES_DATA_DIR && `${env.BENCH_FEATURES_DATA_DIR}/node/sandboxes`
  if (!dir || !existsSync(dir)) return id
  for (const name of readdirSync(dir)) {
    const path = `${dir}/${name}/record.json`
    if (!existsSync(path)) continue
    const rec = JSON.parse(readFileSync(path, 'utf8'))
    if (rec.spec?.id === id) return rec.runtimeID || name
  }
  return id
}

/**
 * A sandbox's memory as the node sees it, in MiB: its cgroup's usage, the part of
 * it that is not page cache, and the proportional set size of its host processes
 * (runsc's Sentry, gofer and stubs). Null when the cgroup is not found.
 */
export function hostMemory(id) {
  const rid = runtimeID(id)
  const dir = [`/sys/fs/cgroup/memory/lelantos/${rid}`, `/sys/fs/cgroup/lelantos/${rid}`].find((d) => existsSync(d))
  if (!dir) return null
  const v1 = existsSync(`${dir}/memory.usage_in_bytes`)
  const usage = Number(readFileSync(`${dir}/${v1 ? 'memory.usage_in_bytes' : 'memory.current'}`, 'utf8'))
  const stat = readFileSync(`${dir}/memory.stat`, 'utf8')
  const cache = Number((stat.match(v1 ? /^total_cache (\d+)/m : /^file (\d+)/m) || [0, 0])[1])
  let pssKB = 0
  for (const pid of readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
    try {
      pssKB += Number(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').match(/^Pss:\s+(\d+)/m)[1])
    } catch { /* gone meanwhile */ }
  }
  return { cgroupMiB: round(usage / 2 ** 20), noncacheMiB: round((usage - Math.min(usage, cache)) / 2 ** 20), pssMiB: round(pssKB / 1024) }
}

/** The median of xs. */
export const median = (xs) => pct(xs, 50)

/** Starts in sbx a process holding mib MiB resident (every page touched) and waits until it holds them. */
export async function holdResident(sbx, mib) {
  await sbx.commands.run(`python3 -c "
import time
b = bytearray(${mib} << 20)
for i in range(0, len(b), 4096): b[i] = 1
open('/tmp/ready', 'w').close()
time.sleep(1e6)"`, { background: true })
  for (let i = 0; ; i++) {
    if ((await sbx.commands.run('test -e /tmp/ready', { timeoutMs: 5000 }).catch(() => ({ exitCode: 1 }))).exitCode === 0) return
    if (i > 300) throw new Error(`the ${mib} MiB process did not get ready`)
    await sleep(100)
  }
}
