// Measures envd and the API through the official npm e2b client against a running
// Lelantos server, each beside a baseline measured in the same run, and prints one
// JSON object on stdout (progress goes to stderr). scripts/bench.sh runs it through
// tests/bench/envd.sh; cmd/benchreport reads its output.
//
// Settings: E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY (the server's client.env);
// BENCH_LOCAL_URL, the baseline file server (cmd/benchfs); BENCH_WORK_DIR, scratch
// space for the local file; BENCH_CMD_N (200), BENCH_TRANSFER_MB (512),
// BENCH_TRANSFER_RUNS (3), BENCH_API_CREATE_N (20); client.mjs's (see there);
// BENCH_ONLY=client to run only client.mjs's measurements (without the code interpreter's).
import { Sandbox } from 'e2b'
import { clientBench } from './client.mjs'
import { spawn, execFile } from 'node:child_process'
import { createReadStream, existsSync, readFileSync } from 'node:fs'
import { open, rm } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { promisify } from 'node:util'

const env = process.env
const API = env.E2B_API_URL
const SANDBOX_URL = env.E2B_SANDBOX_URL
const KEY = env.E2B_API_KEY
const LOCAL_URL = env.BENCH_LOCAL_URL
const WORK = env.BENCH_WORK_DIR
const count = (name, def) => {
  const v = Number(env[name] || def)
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name}=${env[name]}: want a positive integer`)
  return v
}
const N_CMD = count('BENCH_CMD_N', 200)
const MB = count('BENCH_TRANSFER_MB', 512)
const RUNS = count('BENCH_TRANSFER_RUNS', 3)
const N_CREATE = count('BENCH_API_CREATE_N', 20)
for (const [k, v] of Object.entries({ E2B_API_URL: API, E2B_SANDBOX_URL: SANDBOX_URL, E2B_API_KEY: KEY, BENCH_LOCAL_URL: LOCAL_URL, BENCH_WORK_DIR: WORK })) {
  if (!v) throw new Error(`${k} is not set`)
}

const log = (...a) => console.error('[envd.mjs]', ...a)
const execFileP = promisify(execFile)

/** p-th percentile (nearest rank) of xs. */
function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]
}
const round = (x, d = 2) => Math.round(x * 10 ** d) / 10 ** d
const dist = (xs) => ({ p50: round(pct(xs, 50), 3), p99: round(pct(xs, 99), 3), n: xs.length })

/** Times one call of fn in milliseconds. */
async function timed(fn) {
  const t0 = performance.now()
  const v = await fn()
  return [performance.now() - t0, v]
}

const apiHeaders = { 'X-API-Key': KEY, 'Content-Type': 'application/json' }

/** Kills a sandbox through the API. */
async function kill(id) {
  const res = await fetch(`${API}/sandboxes/${id}`, { method: 'DELETE', headers: apiHeaders })
  await res.arrayBuffer()
  if (res.status !== 204 && res.status !== 404) throw new Error(`DELETE /sandboxes/${id}: ${res.status}`)
}

/** POST /sandboxes wall time, as a client sees it, over N_CREATE creates. */
async function apiCreates() {
  const times = []
  for (let i = 0; i < N_CREATE; i++) {
    const [ms, body] = await timed(async () => {
      const res = await fetch(`${API}/sandboxes`, {
        method: 'POST', headers: apiHeaders, body: JSON.stringify({ templateID: 'base', timeout: 300 }),
      })
      const text = await res.text()
      if (res.status !== 201) throw new Error(`POST /sandboxes: ${res.status} ${text}`)
      return JSON.parse(text)
    })
    times.push(ms)
    await kill(body.sandboxID)
  }
  return dist(times)
}

/**
 * The sandbox's memory as the host sees it: its cgroup's usage, and the proportional
 * set size (PSS: shared pages split between their users, so the sum counts the
 * sandbox's guest memory once) of the host processes in the cgroup (runsc's Sentry,
 * gofer and systrap stubs).
 */
function hostView(id) {
  const dirs = [`/sys/fs/cgroup/memory/lelantos/${id}`, `/sys/fs/cgroup/lelantos/${id}`]
  const dir = dirs.find((d) => existsSync(d))
  if (!dir) return null
  const usageFile = existsSync(`${dir}/memory.usage_in_bytes`) ? 'memory.usage_in_bytes' : 'memory.current'
  const usage = Number(readFileSync(`${dir}/${usageFile}`, 'utf8'))
  let pssKB = 0
  let maxRssKB = 0
  let n = 0
  for (const pid of readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
    try {
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
      pssKB += Number(rollup.match(/^Pss:\s+(\d+)/m)[1])
      maxRssKB = Math.max(maxRssKB, Number(rollup.match(/^Rss:\s+(\d+)/m)[1]))
      n++
    } catch { /* gone meanwhile */ }
  }
  return { cgroupUsageMiB: round(usage / 2 ** 20), processes: n, processesPssMiB: round(pssKB / 1024), largestProcessRssMiB: round(maxRssKB / 1024) }
}

/** VmRSS, in MiB, of the status file at path inside the sandbox. */
async function sandboxRss(sbx, path) {
  const r = await sbx.commands.run(`grep VmRSS ${path}`)
  return round(Number(r.stdout.match(/VmRSS:\s+(\d+)/)[1]) / 1024)
}

/** Idle memory of envd (pid 1 inside the sandbox), with grep's own as the baseline. */
async function idleMemory(sbx) {
  const pid1 = (await sbx.commands.run("tr '\\0' ' ' < /proc/1/cmdline")).stdout.trim()
  return {
    pid1,
    envdRssMiB: await sandboxRss(sbx, '/proc/1/status'),
    grepRssMiB: await sandboxRss(sbx, '/proc/self/status'),
    host: hostView(sbx.sandboxId),
  }
}

/** A local fork and exec of /bin/true from node, awaited like a command. */
function spawnTrue() {
  return new Promise((resolve, reject) => {
    const c = spawn('/bin/true', { stdio: 'ignore' })
    c.on('error', reject)
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`/bin/true exited ${code}`))))
  })
}

/** commands.run('true') round trips, the local baseline, and the same inside. */
async function commands(sbx) {
  for (let i = 0; i < 10; i++) await sbx.commands.run('true') // warm-up
  const rt = []
  for (let i = 0; i < N_CMD; i++) {
    const [ms, r] = await timed(() => sbx.commands.run('true'))
    if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode}`)
    rt.push(ms)
  }
  const local = []
  for (let i = 0; i < N_CMD; i++) local.push((await timed(spawnTrue))[0])
  // How long the shell the clients run commands in takes inside the sandbox.
  const inside = async (cmd) => {
    const r = await sbx.commands.run(`s=$(date +%s%N); for i in $(seq 50); do ${cmd}; done; e=$(date +%s%N); echo $(( (e - s) / 50000 ))`)
    return round(Number(r.stdout.trim()) / 1000, 3)
  }
  return {
    roundTripMs: dist(rt),
    localSpawnMs: dist(local),
    insideBashLoginMs: await inside('bash -l -c true'),
    insideTrueMs: await inside('/bin/true'),
  }
}

/** Writes a file of mb MiB: one random MiB, repeated. */
async function makeFile(path, mb) {
  const block = randomBytes(1 << 20)
  const f = await open(path, 'w')
  for (let i = 0; i < mb; i++) await f.write(block)
  await f.close()
}

/** Runs curl and returns [status, bytes, seconds] from its -w output. */
async function curl(args) {
  const { stdout } = await execFileP('curl', ['-sS', '-o', '/dev/null', '-H', 'Expect:', ...args], { maxBuffer: 1 << 20 })
  const [code, bytes, secs] = stdout.trim().split(' ')
  return [Number(code), Number(bytes), Number(secs)]
}

/** MB/s (10^6 bytes per second). */
const mbps = (bytes, ms) => bytes / 1e6 / (ms / 1000)

/**
 * Upload and download throughput: the e2b client and curl through the proxy, and as
 * baselines curl and node's fetch against the local file server.
 */
async function transfers(sbx) {
  const size = MB * 2 ** 20
  const local = join(WORK, 'big.bin')
  await makeFile(local, MB)
  const route = ['-H', `E2b-Sandbox-Id: ${sbx.sandboxId}`, '-H', 'E2b-Sandbox-Port: 49983', '-H', `X-Access-Token: ${sbx.envdAccessToken}`]
  const out = {
    e2bUpload: [], e2bDownload: [], curlUpload: [], curlDownload: [], curlGzipDownload: [],
    localUpload: [], localDownload: [], localFetchUpload: [], localFetchDownload: [],
  }
  const check = (what, code, bytes) => {
    if (code !== 200 || bytes !== size) throw new Error(`${what}: status ${code}, ${bytes} bytes, want 200 and ${size}`)
  }
  for (let r = 0; r < RUNS; r++) {
    log(`transfer run ${r + 1}/${RUNS} of ${MB} MiB`)
    const remote = '/home/user/big.bin'
    let [ms] = await timed(() => sbx.files.write(remote, Readable.toWeb(createReadStream(local, { highWaterMark: 1 << 20 }))))
    const got = Number((await sbx.commands.run(`stat -c %s ${remote}`)).stdout.trim())
    if (got !== size) throw new Error(`e2b upload: the sandbox holds ${got} bytes, want ${size}`)
    out.e2bUpload.push(mbps(size, ms))
    let n = 0
    ;[ms] = await timed(async () => {
      for await (const chunk of await sbx.files.read(remote, { format: 'stream' })) n += chunk.length
    })
    if (n !== size) throw new Error(`e2b download: ${n} bytes, want ${size}`)
    out.e2bDownload.push(mbps(size, ms))

    const url = `${SANDBOX_URL}/files?path=/home/user/curl.bin&username=user`
    let [code, bytes, secs] = await curl([...route, '-H', 'Content-Type: application/octet-stream', '-X', 'POST', '-T', local, '-w', '%{http_code} %{size_upload} %{time_total}', url])
    check('curl upload', code, bytes)
    out.curlUpload.push(bytes / 1e6 / secs)
    ;[code, bytes, secs] = await curl([...route, '-w', '%{http_code} %{size_download} %{time_total}', url])
    check('curl download', code, bytes)
    out.curlDownload.push(bytes / 1e6 / secs)
    // As node's fetch asks for it (Accept-Encoding: gzip): envd then compresses.
    ;[code, bytes, secs] = await curl([...route, '-H', 'Accept-Encoding: gzip', '-w', '%{http_code} %{size_download} %{time_total}', url])
    if (code !== 200 || bytes < size / 2) throw new Error(`curl gzip download: status ${code}, ${bytes} bytes`)
    out.curlGzipDownload.push(size / 1e6 / secs)

    const lurl = `${LOCAL_URL}/files?path=local.bin`
    ;[code, bytes, secs] = await curl(['-H', 'Content-Type: application/octet-stream', '-X', 'POST', '-T', local, '-w', '%{http_code} %{size_upload} %{time_total}', lurl])
    check('local upload', code, bytes)
    out.localUpload.push(bytes / 1e6 / secs)
    ;[code, bytes, secs] = await curl(['-w', '%{http_code} %{size_download} %{time_total}', lurl])
    check('local download', code, bytes)
    out.localDownload.push(bytes / 1e6 / secs)

    // node's own fetch against the local server: what the client side costs.
    ;[ms] = await timed(async () => {
      const res = await fetch(lurl, {
        method: 'POST', duplex: 'half', headers: { 'Content-Type': 'application/octet-stream' },
        body: Readable.toWeb(createReadStream(local, { highWaterMark: 1 << 20 })),
      })
      await res.arrayBuffer()
      if (res.status !== 200) throw new Error(`fetch upload: status ${res.status}`)
    })
    out.localFetchUpload.push(mbps(size, ms))
    n = 0
    ;[ms] = await timed(async () => {
      const res = await fetch(lurl)
      for await (const chunk of res.body) n += chunk.length
    })
    if (n !== size) throw new Error(`fetch download: ${n} bytes, want ${size}`)
    out.localFetchDownload.push(mbps(size, ms))
  }
  await rm(local, { force: true })
  const med = {}
  for (const [k, v] of Object.entries(out)) med[k] = { p50MBps: round(pct(v, 50), 1), runs: v.map((x) => round(x, 1)) }
  return { sizeMiB: MB, ...med }
}

async function main() {
  const result = { settings: { N_CMD, MB, RUNS, N_CREATE } }
  const client = clientBench({ API, SANDBOX_URL, KEY, count, dist, round, timed, kill, log })
  result.client = await client.run()
  if (env.BENCH_ONLY === 'client') {
    console.log(JSON.stringify(result, null, 1))
    return
  }
  log(`API creates x${N_CREATE}`)
  result.apiCreateMs = await apiCreates()
  log('Sandbox.create')
  const [createMs, sbx] = await timed(() => Sandbox.create('base', { timeoutMs: 30 * 60_000 }))
  result.clientCreateMs = round(createMs, 3)
  try {
    await new Promise((r) => setTimeout(r, 2000))
    result.idle = await idleMemory(sbx)
    log(`commands.run x${N_CMD}`)
    result.commands = await commands(sbx)
    result.transfer = await transfers(sbx)
    result.afterLoad = { envdRssMiB: await sandboxRss(sbx, '/proc/1/status'), host: hostView(sbx.sandboxId) }
  } finally {
    await kill(sbx.sandboxId)
  }
  log('client: code interpreter creates')
  result.client.interpreterFirstMs = await client.interpreter() // last: its template builds meanwhile
  console.log(JSON.stringify(result, null, 1))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
