// Many nodes, measured through the npm e2b client (run by cluster.sh):
//   cluster.mjs store NAME OUT   `Sandbox.create()` one by one against the server
//                                of E2B_API_URL, p50/p99, into OUT's store.NAME
//   cluster.mjs nodes OUT        against a server with a second node (the command
//                                in BENCH_NODE_CMD, a JSON array, started and
//                                stopped here): creates per second sustained
//                                with two nodes and with one, and the resume
//                                (`Sandbox.connect()` and a first command) of a
//                                sandbox with 200 MiB resident on its own node and
//                                on the other once its own is stopped (the image
//                                moved), into OUT's throughput and resume.
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { Sandbox } from 'e2b'
import { api, count, dist, holdResident, kill, run, sleep, timed } from './features.lib.mjs'

const [mode, arg, outArg] = process.argv.slice(2)
const out = mode === 'store' ? outArg : arg
const log = (...a) => console.error('[cluster]', ...a)

/** Merges part into the JSON document at out. */
function save(part) {
  const doc = existsSync(out) ? JSON.parse(readFileSync(out, 'utf8')) : {}
  for (const [k, v] of Object.entries(part)) doc[k] = { ...(doc[k] ?? {}), ...v }
  writeFileSync(out, JSON.stringify(doc, null, 1))
}

async function store(name) {
  const n = count('BENCH_CLUSTER_CREATE_N', 20)
  const ms = []
  for (let i = 0; i < n + 2; i++) {
    const [t, sbx] = await timed(() => Sandbox.create({ timeoutMs: 120_000 }))
    if (i >= 2) ms.push(t) // the first two warm the path
    await sbx.kill()
    await sleep(300)
  }
  save({ store: { [name]: { createMs: dist(ms) } } })
  log(name, JSON.stringify(dist(ms)))
}

/** The second node's process, started on demand. */
let nodeProc = null
async function startNode() {
  const [cmd, ...args] = JSON.parse(process.env.BENCH_NODE_CMD)
  const since = Date.now()
  nodeProc = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] })
  // Ready by a report of this process: one of a process stopped a moment ago
  // still counts as ready.
  await until('the second node ready', (ns) => ns.some((x) => x.nodeID === 'node' && x.status === 'ready' &&
    Date.parse(x.lastHeartbeat) >= since - 1000))
}
async function stopNode() {
  const p = nodeProc
  nodeProc = null
  const gone = new Promise((r) => p.once('exit', r))
  p.kill('SIGTERM')
  await gone
}
async function until(what, ok) {
  for (let i = 0; i < 240; i++) {
    const ns = await api('GET', '/nodes', [200])
    if (ok(ns)) return ns
    await sleep(250)
  }
  throw new Error(`${what}: ${JSON.stringify(await api('GET', '/nodes', [200]))}`)
}
const setNode = (id, status) => api('POST', `/nodes/${id}`, [204], { status })

/** Creates per second over seconds with c workers, each creating and killing. */
async function throughput(seconds, c) {
  let made = 0
  const end = performance.now() + seconds * 1000
  await Promise.all(Array.from({ length: c }, async () => {
    while (performance.now() < end) {
      const sbx = await Sandbox.create({ timeoutMs: 120_000 })
      made++
      await sbx.kill()
    }
  }))
  return Math.round((made / seconds) * 100) / 100
}

/** A sandbox on the second node with 200 MiB in /dev/shm, paused. */
async function pausedOnNode() {
  await setNode('local', 'draining')
  const sbx = await Sandbox.create({ timeoutMs: 600_000 })
  await setNode('local', 'ready')
  // A process holding 200 MiB, as the single-node pause benchmark has.
  await holdResident(sbx, 200)
  await run(sbx, 'echo x > /dev/shm/mark')
  await sbx.pause()
  return sbx.sandboxId
}

/** Connect (resume) and a first command, in ms; checks the memory came back. */
async function resume(id) {
  const [t, got] = await timed(async () => {
    const s = await Sandbox.connect(id, { timeoutMs: 600_000 })
    return run(s, 'cat /dev/shm/mark && pgrep -c -f bytearray')
  })
  if (got !== 'x\n1') throw new Error(`resumed ${id} without its memory: ${got}`)
  return t
}

async function nodes() {
  const seconds = count('BENCH_CLUSTER_SECONDS', 20)
  const workers = count('BENCH_CLUSTER_WORKERS', 4)
  const rounds = count('BENCH_CLUSTER_RESUME_N', 3)
  await startNode()
  try {
    await throughput(3, workers) // warm both nodes' paths
    await setNode('node', 'draining')
    const one = await throughput(seconds, workers)
    await setNode('node', 'ready')
    const two = await throughput(seconds, workers)
    save({ throughput: { oneNodePerSec: one, twoNodesPerSec: two, seconds, workers } })
    log('creates/s one node', one, 'two nodes', two)
    const same = []
    const moved = []
    for (let i = 0; i < rounds; i++) {
      const id = await pausedOnNode()
      same.push(await resume(id))
      await Sandbox.pause(id)
      await stopNode()
      moved.push(await resume(id))
      await kill(id)
      await startNode()
    }
    save({ resume: { residentMiB: 200, sameNodeMs: dist(same), movedMs: dist(moved) } })
    log('resume same node', JSON.stringify(dist(same)), 'moved', JSON.stringify(dist(moved)))
  } finally {
    if (nodeProc) await stopNode()
  }
}

if (mode === 'store') await store(arg)
else if (mode === 'nodes') await nodes()
else throw new Error(`usage: cluster.mjs store NAME OUT | nodes OUT, not ${mode}`)
