// E2B's sandbox features through the e2b client, each beside a same-run baseline:
// fork x1 and x10 (beside a create from the template), a create from a snapshot
// (beside one from the template), the first byte of a request that auto-resumes a
// paused sandbox (beside the same request to a running one), and a download through
// the egress proxy's domain check (beside the same download with no rules).
import { Sandbox } from 'e2b'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { SANDBOX_URL, count, dist, kill, log, median, round, run, sleep, timed } from './features.lib.mjs'

const FORK_ROUNDS = count('BENCH_FEATURE_FORK_ROUNDS', 3)
const SNAPSHOT_N = count('BENCH_SNAPSHOT_N', 5)
const RESUME_N = count('BENCH_RESUME_N', 5)
const EGRESS_MB = count('BENCH_EGRESS_MB', 1024)
const EGRESS_RUNS = count('BENCH_EGRESS_RUNS', 3)
const execFileP = promisify(execFile)

/** Create to first commands.run('true') of the base template; returns [ms, sandbox]. */
const createBase = (opts = {}) => timed(async () => {
  const s = await Sandbox.create('base', { timeoutMs: 300_000, ...opts })
  await run(s, 'true')
  return s
})

/** fork({ count }) of a running sandbox, FORK_ROUNDS times for 1 and for 10, each child's first command timed too. */
export async function forks() {
  const src = (await createBase())[1]
  try {
    await run(src, 'echo forked > /tmp/mark')
    const out = {}
    for (const n of [1, 10]) {
      const call = []
      const toFirst = []
      for (let r = 0; r < FORK_ROUNDS; r++) {
        const t0 = performance.now()
        const children = await src.fork({ count: n, timeoutMs: 300_000 })
        call.push(performance.now() - t0)
        try {
          if (children.length !== n) throw new Error(`fork({ count: ${n} }) gave ${children.length} sandboxes`)
          await Promise.all(children.map(async (c) => {
            if ((await run(c, 'cat /tmp/mark')) !== 'forked') throw new Error(`fork ${c.sandboxId} lacks the source's file`)
          }))
          toFirst.push(performance.now() - t0)
        } finally {
          await kill(...children.map((c) => c.sandboxId))
        }
      }
      out[`x${n}`] = { callMs: dist(call), allFirstCommandMs: dist(toFirst) }
    }
    const base = []
    for (let r = 0; r < FORK_ROUNDS; r++) {
      const [ms, s] = await createBase()
      base.push(ms)
      await kill(s.sandboxId)
    }
    out.baseCreateMs = dist(base)
    return out
  } finally {
    await kill(src.sandboxId)
  }
}

/** Creates from one snapshot vs from the template, interleaved, each to its first command. */
export async function snapshots() {
  const src = (await createBase())[1]
  let snap
  try {
    await run(src, 'echo snapped > /tmp/mark')
    const [snapMs, s] = await timed(() => src.createSnapshot())
    snap = s
    const fromSnap = []
    const fromTemplate = []
    for (let i = 0; i < SNAPSHOT_N; i++) {
      const [ms, c] = await timed(async () => {
        const c = await Sandbox.create(snap.snapshotId, { timeoutMs: 300_000 })
        if ((await run(c, 'cat /tmp/mark')) !== 'snapped') throw new Error(`${c.sandboxId} from the snapshot lacks its file`)
        return c
      })
      fromSnap.push(ms)
      await kill(c.sandboxId)
      const [bms, b] = await createBase()
      fromTemplate.push(bms)
      await kill(b.sandboxId)
    }
    return { createSnapshotMs: round(snapMs, 1), fromSnapshotMs: dist(fromSnap), fromTemplateMs: dist(fromTemplate) }
  } finally {
    await kill(src.sandboxId)
    if (snap) await Sandbox.deleteSnapshot(snap.snapshotId)
  }
}

/** curl's time to the first byte (ms) of GET / on port 8000 of sandbox id through the proxy. */
async function firstByte(id) {
  const { stdout } = await execFileP('curl', ['-sS', '-o', '/dev/null', '-m', '60', '-w', '%{http_code} %{time_starttransfer}',
    '-H', `E2b-Sandbox-Id: ${id}`, '-H', 'E2b-Sandbox-Port: 8000', `${SANDBOX_URL}/`])
  const [code, secs] = stdout.trim().split(' ')
  if (code !== '200') throw new Error(`GET / of ${id} port 8000 through the proxy: status ${code}`)
  return Number(secs) * 1000
}

/** First byte of a request to a paused autoResume sandbox vs the same request to it running. */
export async function autoResume() {
  const s = (await createBase({ lifecycle: { onTimeout: 'pause', autoResume: true } }))[1]
  try {
    await s.commands.run('python3 -m http.server 8000 --bind 0.0.0.0 --directory /tmp', { background: true })
    for (let i = 0; ; i++) { // until it serves, for at most about 10 s
      try {
        await firstByte(s.sandboxId)
        break
      } catch (e) {
        if (i >= 100) throw e
        await sleep(100)
      }
    }
    const paused = []
    const running = []
    const pauses = []
    for (let i = 0; i < RESUME_N; i++) {
      for (let j = 0; j < 3; j++) running.push(await firstByte(s.sandboxId))
      const [pms, ok] = await timed(() => s.pause())
      if (ok !== true) throw new Error(`pause of ${s.sandboxId} gave ${ok}`)
      pauses.push(pms)
      paused.push(await firstByte(s.sandboxId))
    }
    return { pausedFirstByteMs: dist(paused), runningFirstByteMs: dist(running), pauseMs: dist(pauses) }
  } finally {
    await kill(s.sandboxId)
  }
}

/**
 * A download of EGRESS_MB MiB over HTTP from the test network's server by name,
 * from a sandbox whose allowOut names it (each connection redirected to the egress
 * proxy, which reads the Host header) and from one without rules, alternating.
 * net is the test network (features.net.mjs): its name and address.
 */
export async function egress(net) {
  const bytes = EGRESS_MB * 2 ** 20
  const url = `http://${net.name}/bytes/${bytes}`
  const ruled = (await createBase({ network: { allowOut: [net.name], denyOut: ['0.0.0.0/0'] } }))[1]
  const open = (await createBase())[1]
  try {
    const once = async (s) => {
      const out = await run(s, `curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total} %{time_starttransfer}' ${url}`, 600_000)
      const [code, size, total, first] = out.split(' ').map(Number)
      if (code !== 200 || size !== bytes) throw new Error(`download in ${s.sandboxId}: status ${code}, ${size} bytes, want 200 and ${bytes}`)
      return { mbps: bytes / 1e6 / total, firstMs: first * 1000 }
    }
    // The rules hold: an address outside allowOut is refused.
    const reachedOther = await ruled.commands.run(`curl -sS -m 5 -o /dev/null http://${net.other}:8080/`, { timeoutMs: 30_000 })
      .then(() => true, (e) => { if (e?.result?.exitCode === undefined) throw e; return false })
    if (reachedOther) throw new Error('the sandbox with rules reached an address outside them')
    const r = { rules: [], none: [] }
    for (let i = 0; i < EGRESS_RUNS; i++) {
      log(`egress download ${i + 1}/${EGRESS_RUNS} of ${EGRESS_MB} MiB, with and without rules`)
      r.rules.push(await once(ruled))
      r.none.push(await once(open))
    }
    const sum = (xs) => ({
      p50MBps: round(median(xs.map((x) => x.mbps)), 1), runs: xs.map((x) => round(x.mbps, 1)),
      firstByteP50Ms: round(median(xs.map((x) => x.firstMs)), 2),
    })
    const rules = sum(r.rules)
    const none = sum(r.none)
    return { sizeMiB: EGRESS_MB, rules, none, slowerPct: round(100 * (1 - rules.p50MBps / none.p50MBps), 1) }
  } finally {
    await kill(ruled.sandboxId, open.sandboxId)
  }
}
