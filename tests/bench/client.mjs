// Speed as a user of the npm e2b client feels it, each figure beside its floor
// measured in the same run: create to first command (one after another, and in
// bursts of concurrent creates), commands.run('true') beside /bin/true through
// envd's process API without a shell, small files.read and files.write beside a
// round trip to envd's /health through the proxy and without it, and pause and
// resume (connect and a first command) with 200 MiB resident, and create to first
// command from code-interpreter-v1. envd.mjs runs it. Counts [defaults]:
// BENCH_CLIENT_CREATE_N [20] sequential creates, BENCH_BURST_SIZE [10] and
// BENCH_BURST_ROUNDS [3], BENCH_SMALL_N [200] commands and small file operations,
// BENCH_CLIENT_PAUSE_N [3] pause cycles, BENCH_INTERPRETER_WAIT_S [420].
import { Sandbox } from 'e2b'
import { holdResident } from './features.lib.mjs'

/** Settings and helpers envd.mjs passes in. */
export function clientBench({ API, SANDBOX_URL, KEY, count, dist, round, timed, kill, log }) {
  const N_SEQ = count('BENCH_CLIENT_CREATE_N', 20)
  const BURST = count('BENCH_BURST_SIZE', 10)
  const ROUNDS = count('BENCH_BURST_ROUNDS', 3)
  const N_SMALL = count('BENCH_SMALL_N', 200)
  const N_PAUSE = count('BENCH_CLIENT_PAUSE_N', 3)
  const ENVD_PORT = 49983

  /** Create to the end of a first commands.run('true'), and the sandbox. */
  async function createToFirst(template = 'base') {
    return timed(async () => {
      const sbx = await Sandbox.create(template, { timeoutMs: 10 * 60_000 })
      const r = await sbx.commands.run('true')
      if (r.exitCode !== 0) throw new Error(`first command exited ${r.exitCode}`)
      return sbx
    })
  }

  /** Sequential creates, each killed before the next (the kill not timed). */
  async function sequential(template, n) {
    const times = []
    for (let i = 0; i < n; i++) {
      const [ms, sbx] = await createToFirst(template)
      times.push(ms)
      await kill(sbx.sandboxId)
    }
    return dist(times)
  }

  /** ROUNDS bursts of BURST concurrent creates, a pause between rounds. */
  async function bursts() {
    const times = []
    for (let r = 0; r < ROUNDS; r++) {
      const got = await Promise.all(Array.from({ length: BURST }, () => createToFirst()))
      for (const [ms] of got) times.push(ms)
      await Promise.all(got.map(([, sbx]) => kill(sbx.sandboxId)))
      await new Promise((res) => setTimeout(res, 3000)) // as a user's next batch would
    }
    return { size: BURST, rounds: ROUNDS, ...dist(times) }
  }

  /** Headers that route a request through the proxy to the sandbox's envd. */
  const route = (sbx) => ({ 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': String(ENVD_PORT), 'X-Access-Token': sbx.envdAccessToken })

  /** One GET /health, through the proxy (base SANDBOX_URL) or straight to the sandbox. */
  async function health(base, headers) {
    const res = await fetch(`${base}/health`, { headers })
    await res.arrayBuffer()
    if (res.status !== 204 && res.status !== 200) throw new Error(`GET /health: ${res.status}`)
  }

  /** /bin/true through envd's process API (Connect, JSON), no shell, through the proxy. */
  async function rawTrue(sbx) {
    const msg = Buffer.from(JSON.stringify({ process: { cmd: '/bin/true' } }))
    const env = Buffer.alloc(5 + msg.length)
    env.writeUInt32BE(msg.length, 1)
    msg.copy(env, 5)
    const res = await fetch(`${SANDBOX_URL}/process.Process/Start`, {
      method: 'POST', body: env,
      headers: { ...route(sbx), 'Content-Type': 'application/connect+json', 'Connect-Protocol-Version': '1' },
    })
    const text = Buffer.from(await res.arrayBuffer()).toString('latin1')
    if (res.status !== 200 || !text.includes('"end"') || !text.includes('"exited":true')) {
      throw new Error(`process Start /bin/true: ${res.status} ${text.slice(0, 200)}`)
    }
    if (text.includes('"exitCode"')) throw new Error(`/bin/true exited non-zero: ${text.slice(0, 200)}`)
  }

  /** Times fn N times after a warm-up of 10. */
  async function series(n, fn) {
    for (let i = 0; i < 10; i++) await fn()
    const times = []
    for (let i = 0; i < n; i++) times.push((await timed(fn))[0])
    return dist(times)
  }

  /** Commands and small files on one sandbox, each beside its floor. */
  async function small(sbx) {
    const ip = (await sbx.commands.run('hostname -I')).stdout.trim().split(/\s+/)[0]
    const direct = `http://${ip}:${ENVD_PORT}`
    const path = '/home/user/small.txt'
    const body = 'twenty bytes of text'
    await sbx.files.write(path, body)
    const out = {
      commandTrueMs: await series(N_SMALL, async () => {
        const r = await sbx.commands.run('true')
        if (r.exitCode !== 0) throw new Error(`true exited ${r.exitCode}`)
      }),
      rawTrueMs: await series(N_SMALL, () => rawTrue(sbx)),
      readMs: await series(N_SMALL, async () => {
        if ((await sbx.files.read(path)) !== body) throw new Error('files.read: wrong content')
      }),
      writeMs: await series(N_SMALL, () => sbx.files.write(path, body)),
      healthProxyMs: await series(N_SMALL, () => health(SANDBOX_URL, route(sbx))),
      healthDirectMs: null,
    }
    try {
      out.healthDirectMs = await series(N_SMALL, () => health(direct, { 'X-Access-Token': sbx.envdAccessToken }))
    } catch (err) {
      log(`envd /health without the proxy: ${err.message}`)
    }
    return out
  }

  /** Pause and resume (connect and a first command) with 200 MiB resident. */
  async function pauseResume() {
    const sbx = await Sandbox.create('base', { timeoutMs: 10 * 60_000 })
    const id = sbx.sandboxId
    try {
      await holdResident(sbx, 200)
      const pauses = []
      const resumes = []
      for (let i = 0; i < N_PAUSE; i++) {
        const [p] = await timed(() => sbx.betaPause())
        pauses.push(p)
        const [r] = await timed(async () => {
          const again = await Sandbox.connect(id, { timeoutMs: 10 * 60_000 })
          const c = await again.commands.run('test -e /tmp/ready')
          if (c.exitCode !== 0) throw new Error('resumed sandbox lost its files')
        })
        resumes.push(r)
      }
      return { pauseMs: dist(pauses), resumeFirstCommandMs: dist(resumes) }
    } finally {
      await kill(id)
    }
  }

  /**
   * Create to first command of the code interpreter's template. The server builds
   * it in the background from its start; this waits up to BENCH_INTERPRETER_WAIT_S
   * (default 420) for the build, and reports why when it is not there.
   */
  async function interpreter() {
    const deadline = Date.now() + count('BENCH_INTERPRETER_WAIT_S', 420) * 1000
    let first
    for (;;) {
      try {
        first = await createToFirst('code-interpreter-v1')
        break
      } catch (err) {
        if (!/not ready|building/.test(err.message) || Date.now() > deadline) {
          return { skipped: `code-interpreter-v1: ${err.message.slice(0, 200)}` }
        }
        await new Promise((r) => setTimeout(r, 5000))
      }
    }
    await kill(first[1].sandboxId) // the first boots the template's pool
    return sequential('code-interpreter-v1', Math.min(N_SEQ, 5))
  }

  /** Everything but the code interpreter's create, which interpreter measures. */
  async function run() {
    const out = { settings: { N_SEQ, BURST, ROUNDS, N_SMALL, N_PAUSE } }
    log(`client: create to first command x${N_SEQ}`)
    out.createFirstMs = await sequential('base', N_SEQ)
    log(`client: ${ROUNDS} bursts of ${BURST} creates`)
    out.burstFirstMs = await bursts()
    log(`client: commands and small files x${N_SMALL}`)
    const sbx = await Sandbox.create('base', { timeoutMs: 10 * 60_000 })
    try {
      Object.assign(out, await small(sbx))
    } finally {
      await kill(sbx.sandboxId)
    }
    log(`client: pause and resume with 200 MiB x${N_PAUSE}`)
    Object.assign(out, await pauseResume())
    return out
  }

  return { run, interpreter }
}
