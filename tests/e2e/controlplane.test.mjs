// End-to-end tests of the control plane through the official npm `e2b` client.
// tests/e2e/run.sh starts the server and runs this file once per client version
// (E2B_PACKAGE picks it): 2.51 creates and connects through /v2 routes, 2.50
// through the older ones. Every sandbox is killed at the end of its test.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { eventually, sleep } from './lib/api.mjs'
import { startProbe, readProbe, assertProbeContinues } from './lib/sandbox.mjs'

const PKG = process.env.E2B_PACKAGE || 'e2b-2.51.0'
const { Sandbox, NotFoundError, SandboxNotFoundError } = await import(PKG)
const TEMPLATE = 'base'
/** A tag unique to this run and client version, so listings see only our sandboxes. */
const RUN = `${PKG}-${randomBytes(4).toString('hex')}`

/** Kills sandboxes, ignoring failures (for finally blocks). */
async function cleanup(...sbxs) {
  await Promise.all(sbxs.filter(Boolean).map((s) => Sandbox.kill(s.sandboxId ?? s).catch(() => {})))
}

/** Asserts that p rejects with the client's not-found error. */
async function rejectsNotFound(p, what) {
  await assert.rejects(p, (err) => {
    assert.ok(err instanceof NotFoundError, `${what}: want NotFoundError, got ${err?.name}: ${err?.message}`)
    assert.ok(err instanceof SandboxNotFoundError, `${what}: a SandboxNotFoundError`)
    return true
  })
}

/** Asserts that date is within slackMs of want. */
function near(date, want, slackMs, what) {
  assert.ok(date instanceof Date && !Number.isNaN(date.getTime()), `${what} is a date`)
  const diff = Math.abs(date.getTime() - want)
  assert.ok(diff <= slackMs, `${what}: ${date.toISOString()} is ${diff} ms from ${new Date(want).toISOString()}`)
}

/** Every sandbox the paginator yields, and the number of pages it took. */
async function drain(paginator) {
  const items = []
  let pages = 0
  while (paginator.hasNext) {
    const page = await paginator.nextItems()
    pages++
    items.push(...page)
    assert.ok(pages <= 50, 'the listing ends')
  }
  return { items, pages }
}

test('create with metadata and env vars; getInfo, commands and files; kill true then false', { timeout: 120_000 }, async () => {
  const metadata = { suite: RUN, purpose: 'info', 'a b': 'c&d=e' }
  const created = Date.now()
  const sbx = await Sandbox.create(TEMPLATE, { metadata, envs: { LELANTOS_E2E: 'yes', SPACED: 'x y' }, timeoutMs: 120_000 })
  try {
    assert.match(sbx.sandboxId, /^[a-z0-9]+$/)
    const env = await sbx.commands.run('echo "$LELANTOS_E2E|$SPACED"')
    assert.equal(env.stdout, 'yes|x y\n', 'create-time env vars are in every command')

    await sbx.files.write('/tmp/info.txt', 'through the proxy')
    assert.equal(await sbx.files.read('/tmp/info.txt'), 'through the proxy')
    assert.equal(await sbx.isRunning(), true)

    for (const info of [await sbx.getInfo(), await Sandbox.getInfo(sbx.sandboxId)]) {
      assert.equal(info.sandboxId, sbx.sandboxId)
      assert.equal(info.templateId, TEMPLATE)
      assert.deepEqual(info.metadata, metadata)
      assert.equal(info.state, 'running')
      assert.equal(info.cpuCount, 2)
      assert.equal(info.memoryMB, 512)
      assert.match(info.envdVersion, /^\d+\.\d+\.\d+/)
      near(info.startedAt, created, 60_000, 'startedAt')
      near(info.endAt, info.startedAt.getTime() + 120_000, 2_000, 'endAt = startedAt + timeout')
      assert.equal(info.lifecycle?.onTimeout, 'kill')
    }
    assert.equal(await sbx.kill(), true, 'kill of a running sandbox')
    assert.equal(await Sandbox.kill(sbx.sandboxId), false, 'kill of a killed sandbox')
    await rejectsNotFound(sbx.getInfo(), 'getInfo after kill')
    assert.equal(await sbx.isRunning(), false, 'the proxy no longer reaches it')
  } finally {
    await cleanup(sbx)
  }
})

test('create with an unknown template fails naming the field', { timeout: 30_000 }, async () => {
  await assert.rejects(Sandbox.create('no-such-template-e2e', { timeoutMs: 30_000 }), (err) => {
    assert.match(err.message, /^400: /, `got ${err.name}: ${err.message}`)
    assert.match(err.message, /templateID/)
    return true
  })
})

test('list: metadata and state filters, several pages', { timeout: 180_000 }, async () => {
  const tag = `${RUN}-list`
  const sbxs = []
  try {
    for (let i = 0; i < 3; i++) {
      sbxs.push(await Sandbox.create(TEMPLATE, { metadata: { suite: tag, idx: String(i), 'sp ace': 'v&=%' }, timeoutMs: 120_000 }))
    }
    // Another sandbox with a different tag must not show up.
    sbxs.push(await Sandbox.create(TEMPLATE, { metadata: { suite: `${tag}-other`, idx: '0' }, timeoutMs: 120_000 }))
    assert.equal(await sbxs[1].pause(), true)
    const ids = sbxs.slice(0, 3).map((s) => s.sandboxId).sort()

    const all = await drain(Sandbox.list({ query: { metadata: { suite: tag } }, limit: 1 }))
    assert.deepEqual(all.items.map((s) => s.sandboxId).sort(), ids, 'every match, each once, across pages')
    assert.ok(all.pages >= 3, `limit 1 took ${all.pages} pages`)
    for (const s of all.items) {
      assert.equal(s.templateId, TEMPLATE)
      assert.equal(s.metadata.suite, tag)
      assert.equal(s.metadata['sp ace'], 'v&=%')
      assert.equal(s.state, s.sandboxId === sbxs[1].sandboxId ? 'paused' : 'running')
      assert.equal(s.cpuCount, 2)
      assert.equal(s.memoryMB, 512)
    }

    const paged = Sandbox.list({ query: { metadata: { suite: tag } }, limit: 2 })
    const first = await paged.nextItems()
    assert.equal(first.length, 2, 'a full first page')
    assert.equal(paged.hasNext, true, 'more after the first page')

    const running = await drain(Sandbox.list({ query: { metadata: { suite: tag }, state: ['running'] }, limit: 1 }))
    assert.deepEqual(running.items.map((s) => s.sandboxId).sort(), [sbxs[0].sandboxId, sbxs[2].sandboxId].sort())
    assert.ok(running.items.every((s) => s.state === 'running'))
    const paused = await drain(Sandbox.list({ query: { metadata: { suite: tag }, state: ['paused'] } }))
    assert.deepEqual(paused.items.map((s) => s.sandboxId), [sbxs[1].sandboxId])
    assert.equal(paused.items[0].state, 'paused')

    const both = await drain(Sandbox.list({ query: { metadata: { suite: tag, idx: '2', 'sp ace': 'v&=%' }, state: ['running', 'paused'] } }))
    assert.deepEqual(both.items.map((s) => s.sandboxId), [sbxs[2].sandboxId], 'all pairs must match, special characters included')
    const none = await drain(Sandbox.list({ query: { metadata: { suite: tag, idx: 'nope' } } }))
    assert.deepEqual(none.items, [])
  } finally {
    await cleanup(...sbxs)
  }
})

test('setTimeout moves the end; the sandbox is gone after it', { timeout: 90_000 }, async () => {
  const sbx = await Sandbox.create(TEMPLATE, { timeoutMs: 60_000, metadata: { suite: RUN } })
  try {
    const t0 = Date.now()
    await sbx.setTimeout(600_000)
    near((await sbx.getInfo()).endAt, t0 + 600_000, 5_000, 'endAt after setTimeout(600 s)')
    await Sandbox.setTimeout(sbx.sandboxId, 2_000)
    near((await sbx.getInfo()).endAt, Date.now() + 2_000, 3_000, 'endAt after a shortening setTimeout(2 s)')
    await eventually(async () => !(await sbx.isRunning()), 20_000, 'the proxy to stop routing to it', 250)
    // The reaper ends it within about a second of its end time.
    await eventually(() => sbx.getInfo().then(() => false, (err) => err instanceof SandboxNotFoundError), 10_000,
      'getInfo to answer not found after the timeout', 250)
    await rejectsNotFound(sbx.getInfo(), 'getInfo after the timeout')
    assert.equal(await sbx.kill(), false, 'kill after the timeout')
    const listed = await drain(Sandbox.list({ query: { metadata: { suite: RUN } } }))
    assert.ok(!listed.items.some((s) => s.sandboxId === sbx.sandboxId), 'not listed after the timeout')
    await rejectsNotFound(Sandbox.setTimeout(sbx.sandboxId, 10_000), 'setTimeout after the timeout')
  } finally {
    await cleanup(sbx)
  }
})

test('getMetrics returns samples of a running sandbox', { timeout: 60_000 }, async () => {
  const sbx = await Sandbox.create(TEMPLATE, { timeoutMs: 60_000, metadata: { suite: RUN } })
  try {
    const metrics = await eventually(async () => {
      const m = await sbx.getMetrics()
      return m.length > 0 ? m : null
    }, 10_000, 'a metrics sample', 500)
    for (const m of metrics) {
      assert.ok(m.timestamp instanceof Date && !Number.isNaN(m.timestamp.getTime()), 'timestamp')
      assert.equal(m.cpuCount, 2)
      assert.ok(m.cpuUsedPct >= 0, `cpuUsedPct ${m.cpuUsedPct}`)
      assert.ok(m.memUsed > 0 && m.memUsed <= m.memTotal, `memUsed ${m.memUsed} of ${m.memTotal}`)
      assert.ok(m.memTotal > 0, 'memTotal')
      assert.ok(m.diskTotal > 0 && m.diskUsed >= 0, `disk ${m.diskUsed}/${m.diskTotal}`)
    }
    const windowed = await Sandbox.getMetrics(sbx.sandboxId, { start: new Date(Date.now() - 60_000), end: new Date() })
    assert.ok(windowed.length > 0, 'a window ending now has samples')
    const before = await Sandbox.getMetrics(sbx.sandboxId, { start: new Date(Date.now() - 7_200_000), end: new Date(Date.now() - 3_600_000) })
    assert.deepEqual(before, [], 'a window before the sandbox existed has none')
  } finally {
    await cleanup(sbx)
  }
  await rejectsNotFound(Sandbox.getMetrics(sbx.sandboxId), 'getMetrics after kill')
})

test('pause, pause again, connect resumes with memory and files', { timeout: 180_000 }, async () => {
  const sbx = await Sandbox.create(TEMPLATE, { timeoutMs: 120_000, metadata: { suite: RUN } })
  let again
  try {
    await sbx.files.write('/home/user/kept.txt', 'kept across pause')
    const probe = await startProbe(sbx)
    await sleep(500)
    const beforePause = await readProbe(sbx)
    const t0 = Date.now()

    assert.equal(await sbx.pause(), true, 'pause of a running sandbox')
    assert.equal((await sbx.getInfo()).state, 'paused')
    assert.equal(await sbx.isRunning(), false, 'a paused sandbox is not reachable')
    assert.equal(await sbx.betaPause(), false, 'pausing a paused sandbox answers false (409)')
    assert.equal(await Sandbox.pause(sbx.sandboxId), false, 'static pause of a paused sandbox')
    await sleep(2_000)

    again = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 120_000 })
    const resumedAt = Date.now()
    assert.equal(again.sandboxId, sbx.sandboxId)
    const info = await again.getInfo()
    assert.equal(info.state, 'running')
    near(info.endAt, resumedAt + 120_000, 5_000, 'endAt after connect')
    assert.equal(await again.files.read('/home/user/kept.txt'), 'kept across pause')
    const afterResume = await readProbe(again)
    // Frozen while paused: it counts about 10 times a second, so running
    // through the pause would add far more than this.
    const elapsed = (resumedAt - t0) / 1000
    assert.ok(afterResume.n - beforePause.n < Math.max(5, (elapsed - 1.5) * 10),
      `the probe did not run while paused: +${afterResume.n - beforePause.n} in ${elapsed.toFixed(1)} s`)
    await assertProbeContinues(again, probe, undefined, 'the probe after connect')
    const r = await again.commands.run('cat /home/user/kept.txt; echo; whoami')
    assert.equal(r.stdout, 'kept across pause\nuser\n')

    // Connect to a running sandbox keeps it running and only extends its end.
    await sbx.connect({ timeoutMs: 10_000 })
    near((await sbx.getInfo()).endAt, resumedAt + 120_000, 5_000, 'connect with a shorter timeout does not shorten')
    assert.equal(await sbx.isRunning(), true)
    await assertProbeContinues(sbx, probe, undefined, 'the probe after a second connect')

    assert.equal(await sbx.kill(), true)
    assert.equal(await again.kill(), false)
    await rejectsNotFound(Sandbox.connect(sbx.sandboxId), 'connect after kill')
  } finally {
    await cleanup(sbx)
  }
})

test('kill of a paused sandbox', { timeout: 60_000 }, async () => {
  const sbx = await Sandbox.create(TEMPLATE, { timeoutMs: 60_000, metadata: { suite: RUN } })
  try {
    assert.equal(await sbx.pause(), true)
    assert.equal(await sbx.kill(), true, 'a paused sandbox can be killed')
    assert.equal(await Sandbox.kill(sbx.sandboxId), false)
    await rejectsNotFound(Sandbox.getInfo(sbx.sandboxId), 'getInfo after kill')
  } finally {
    await cleanup(sbx)
  }
})

test('onTimeout pause: the timeout pauses instead of killing; connect resumes', { timeout: 120_000 }, async () => {
  const sbx = await Sandbox.create(TEMPLATE, { timeoutMs: 120_000, lifecycle: { onTimeout: 'pause' }, metadata: { suite: RUN } })
  try {
    assert.equal((await sbx.getInfo()).lifecycle?.onTimeout, 'pause')
    await sbx.files.write('/tmp/auto.txt', 'auto')
    const probe = await startProbe(sbx)
    await sbx.setTimeout(1_000)
    await eventually(async () => (await sbx.getInfo()).state === 'paused', 20_000, 'the timeout to pause it', 250)
    assert.equal(await sbx.isRunning(), false)
    await sbx.connect({ timeoutMs: 60_000 })
    assert.equal((await sbx.getInfo()).state, 'running')
    assert.equal(await sbx.files.read('/tmp/auto.txt'), 'auto')
    await assertProbeContinues(sbx, probe, undefined, 'the probe after an automatic pause')
  } finally {
    await cleanup(sbx)
  }
})
