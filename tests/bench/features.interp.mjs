// The code interpreter through @e2b/code-interpreter, each figure beside the base
// template's through e2b in the same run: create to the first runCode('1+1') result
// vs create to the first commands.run('true'); the runCode('1+1') round trip vs
// commands.run('true'); idle memory of interpreter sandboxes vs base ones, from the
// node's side (cgroup usage, the host's MemAvailable drop), and how many fit in 24 GiB.
import { Sandbox as BaseSandbox } from 'e2b'
import { Sandbox as InterpSandbox } from '@e2b/code-interpreter'
import { api, count, dist, hostMemory, kill, log, median, memAvailable, round, run, sleep, timed } from './features.lib.mjs'

export const TEMPLATE = 'code-interpreter-v1'
const N_CREATE = count('BENCH_INTERP_CREATE_N', 10)
const N_RT = count('BENCH_INTERP_RUN_N', 100)
const N_IDLE = count('BENCH_INTERP_IDLE_N', 3)
const SETTLE_S = count('BENCH_SETTLE_S', 10)
const WAIT_S = count('BENCH_INTERP_WAIT_S', 1800)
// The pause before each create of the create-to-first-result figure.
const GAP_MS = count('BENCH_INTERP_GAP_MS', 1500)
const BUDGET = 24 * 2 ** 30

/** Waits for the server's build of the template; returns how long the wait was (ms). */
async function templateReady() {
  const t0 = performance.now()
  for (;;) {
    const t = (await api('GET', '/templates', [200])).find((x) => x.templateID === TEMPLATE)
    if (!t) throw new Error(`${TEMPLATE} is not listed: start the server with its built-in templates`)
    if (t.buildStatus === 'ready') return performance.now() - t0
    if (t.buildStatus !== 'building') throw new Error(`${TEMPLATE} build status ${t.buildStatus}`)
    if (performance.now() - t0 > WAIT_S * 1000) throw new Error(`${TEMPLATE} not ready after ${WAIT_S} s (BENCH_INTERP_WAIT_S)`)
    await sleep(2000)
  }
}

/**
 * Create to first result, n times, interleaved: an interpreter runCode('1+1'), then
 * a base commands.run('true'), each create gapMs after the last kill (0: back to
 * back, while the node still tears the last sandbox down and refills its pools).
 */
async function creates(gapMs, n = N_CREATE) {
  const interp = { create: [], first: [], total: [] }
  const base = { create: [], first: [], total: [] }
  for (let i = 0; i < n; i++) {
    await sleep(gapMs)
    let t0 = performance.now()
    const s = await InterpSandbox.create({ timeoutMs: 300_000 })
    let t1 = performance.now()
    try {
      const exec = await s.runCode('1+1')
      if (exec.text !== '2') throw new Error(`runCode('1+1') gave ${JSON.stringify(exec.text)} (${exec.error?.name})`)
    } finally {
      const t2 = performance.now()
      interp.create.push(t1 - t0); interp.first.push(t2 - t1); interp.total.push(t2 - t0)
      await kill(s.sandboxId)
    }
    await sleep(gapMs)
    t0 = performance.now()
    const b = await BaseSandbox.create('base', { timeoutMs: 300_000 })
    t1 = performance.now()
    try {
      await run(b, 'true')
    } finally {
      const t2 = performance.now()
      base.create.push(t1 - t0); base.first.push(t2 - t1); base.total.push(t2 - t0)
      await kill(b.sandboxId)
    }
  }
  log(`gap ${gapMs} ms: interpreter create ${interp.create.map(Math.round)} first ${interp.first.map(Math.round)}; base create ${base.create.map(Math.round)} first ${base.first.map(Math.round)}`)
  const d = (x) => ({ totalMs: dist(x.total), createMs: dist(x.create), firstMs: dist(x.first) })
  return { interpreter: d(interp), base: d(base) }
}

/** Round trips on one sandbox of each: runCode('1+1') and commands.run('true'). */
async function roundTrips() {
  const s = await InterpSandbox.create({ timeoutMs: 600_000 })
  const b = await BaseSandbox.create('base', { timeoutMs: 600_000 })
  try {
    for (let i = 0; i < 10; i++) { await s.runCode('1+1'); await run(b, 'true') } // warm-up
    const code = []
    const cmd = []
    for (let i = 0; i < N_RT; i++) {
      const [ms, exec] = await timed(() => s.runCode('1+1'))
      if (exec.text !== '2') throw new Error(`runCode('1+1') gave ${JSON.stringify(exec.text)}`)
      code.push(ms)
      cmd.push((await timed(() => run(b, 'true')))[0])
    }
    return { runCodeMs: dist(code), commandMs: dist(cmd) }
  } finally {
    await kill(s.sandboxId, b.sandboxId)
  }
}

/** Idle memory of N_IDLE sandboxes made by create, after SETTLE_S seconds. */
async function idle(create) {
  await sleep(2000) // let earlier sandboxes' memory go
  const before = memAvailable()
  const ids = []
  try {
    for (let i = 0; i < N_IDLE; i++) ids.push((await create()).sandboxId)
    await sleep(SETTLE_S * 1000)
    const drop = (before - memAvailable()) / N_IDLE
    const views = ids.map(hostMemory).filter(Boolean)
    if (views.length !== ids.length) throw new Error(`found the cgroups of ${views.length} of ${ids.length} sandboxes`)
    const cg = median(views.map((v) => v.cgroupMiB))
    return {
      sandboxes: N_IDLE,
      cgroupP50MiB: cg,
      noncacheP50MiB: median(views.map((v) => v.noncacheMiB)),
      pssP50MiB: median(views.map((v) => v.pssMiB)),
      hostDropMiB: round(drop / 2 ** 20),
      fit24GiBCgroup: Math.floor(BUDGET / (cg * 2 ** 20)),
      fit24GiBHost: drop > 0 ? Math.floor(BUDGET / drop) : null,
    }
  } finally {
    await kill(...ids)
  }
}

/** All the code interpreter's figures. */
export async function interpreter() {
  log(`waiting for ${TEMPLATE} (at most ${WAIT_S} s)`)
  const waitedMs = round(await templateReady(), 0)
  log(`create to first result x${N_CREATE}, interpreter and base, ${GAP_MS} ms apart, then back to back`)
  await creates(GAP_MS, 1) // uncounted: the clients' first calls set up connections and compile their code
  const create = { ...(await creates(GAP_MS)), gapMs: GAP_MS }
  const backToBack = await creates(0)
  log(`runCode and commands.run round trips x${N_RT}`)
  const rt = await roundTrips()
  log(`idle memory, ${N_IDLE} sandboxes of each`)
  const idleInterp = await idle(() => InterpSandbox.create({ timeoutMs: 300_000 }))
  const idleBase = await idle(() => BaseSandbox.create('base', { timeoutMs: 300_000 }))
  return { waitedForTemplateMs: waitedMs, create, backToBack, roundTrip: rt, idle: { interpreter: idleInterp, base: idleBase } }
}
