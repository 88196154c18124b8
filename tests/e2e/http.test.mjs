// End-to-end tests of the control plane's HTTP API by plain fetch: every route
// of the API document, status codes and shapes, validation, authentication, a
// server restart and concurrent lifecycle calls. The e2b client is used only
// to act inside sandboxes (commands, files). run.sh runs this file once.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { cpus, release, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'
import {
  call, assertNoContent, assertError, assertSandboxShape, assertListedShape, createSandbox, detail,
  listAll, killQuietly, clientMetadataQuery, docMetadataQuery, eventually, sleep, restartServer,
} from './lib/api.mjs'
import { openClient, startProbe, assertProbeContinues, assertNoHostProcess } from './lib/sandbox.mjs'
import { fireAll, raceOps, checkRace, summarize } from './lib/race.mjs'
import { invalidRequests } from './lib/invalid.mjs'

const { Sandbox } = await import(process.env.E2B_PACKAGE || 'e2b-2.51.0')
const RUN = `http-${randomBytes(4).toString('hex')}`
const LELANTOS = fileURLToPath(new URL('../../bin/lelantos', import.meta.url))

/** Seconds between two RFC 3339 times. */
const secondsBetween = (a, b) => (Date.parse(b) - Date.parse(a)) / 1000

/** Asserts that an RFC 3339 time is within slack seconds of now + seconds. */
function endsIn(endAt, seconds, slack = 5, what = 'endAt') {
  const got = (Date.parse(endAt) - Date.now()) / 1000
  assert.ok(Math.abs(got - seconds) <= slack, `${what}: ends in ${got.toFixed(1)} s, want ${seconds} s`)
}

test('health and openapi.yaml answer without a key', { timeout: 10_000 }, async () => {
  const health = await call('GET', '/health', { key: null })
  assert.equal(health.status, 200)
  assert.deepEqual(health.json, { status: 'ok' })
  const spec = await call('GET', '/openapi.yaml', { key: null })
  assert.equal(spec.status, 200)
  assert.match(spec.headers.get('content-type'), /yaml/)
  assert.match(spec.text, /^openapi: 3\./m)
  for (const path of ['/sandboxes:', '/v2/sandboxes:', '/sandboxes/{sandboxID}:', '/sandboxes/{sandboxID}/timeout:',
    '/sandboxes/{sandboxID}/refreshes:', '/sandboxes/{sandboxID}/pause:', '/sandboxes/{sandboxID}/resume:',
    '/sandboxes/{sandboxID}/connect:', '/v2/sandboxes/{sandboxID}/connect:', '/sandboxes/{sandboxID}/logs:',
    '/sandboxes/{sandboxID}/metrics:']) {
    assert.ok(spec.text.includes(`\n  ${path}`), `the spec documents ${path}`)
  }
})

test('create on both routes: 201, the Sandbox shape, the detail, env vars and defaults', { timeout: 120_000 }, async () => {
  const ids = []
  try {
    const metadata = { suite: RUN, 'k e y': 'v&a=l%ue' }
    // What clients up to 2.50 send, plus fields Lelantos may ignore but must accept.
    const v1 = await createSandbox({
      templateID: 'base', timeout: 120, metadata, envVars: { E2E_VAR: 'from create', E2E_EMPTY: '' },
      autoPause: false, secure: true, allow_internet_access: true, mcp: { server: {} }, iam: { tokens: {} },
      someFutureField: { x: 1 },
    }, '/sandboxes')
    ids.push(v1.sandboxID)
    assert.equal(v1.templateID, 'base')
    assert.equal(v1.runtimeClass, 'gvisor')
    const v2 = await createSandbox({ templateID: 'base' })
    ids.push(v2.sandboxID)
    const bare = await createSandbox({})
    ids.push(bare.sandboxID)
    assert.equal(bare.templateID, 'base', 'no templateID: the base template (openapi.yaml)')
    assert.equal(new Set(ids).size, 3, 'distinct IDs')

    const d = await detail(v1.sandboxID)
    assertListedShape(d, { detail: true, what: 'detail' })
    assert.equal(d.sandboxID, v1.sandboxID)
    assert.equal(d.templateID, 'base')
    assert.deepEqual(d.metadata, metadata)
    assert.equal(d.state, 'running')
    assert.equal(d.cpuCount, 2)
    assert.equal(d.memoryMB, 512)
    assert.equal(d.envdAccessToken, v1.envdAccessToken)
    assert.equal(d.envdVersion, v1.envdVersion)
    assert.equal(d.allowInternetAccess, true)
    assert.deepEqual(d.lifecycle, { onTimeout: 'kill', autoResume: false })
    assert.deepEqual(d.volumeMounts, [])
    assert.equal(secondsBetween(d.startedAt, d.endAt), 120, 'endAt = startedAt + timeout')
    const d2 = await detail(v2.sandboxID)
    assert.equal(secondsBetween(d2.startedAt, d2.endAt), 300, 'the default timeout is 300 s')
    assert.deepEqual(d2.metadata, {})

    const sbx = openClient(Sandbox, v1)
    const r = await sbx.commands.run('echo "$E2E_VAR|${E2E_EMPTY-unset}|$E2E_UNSET"')
    assert.equal(r.stdout, 'from create||\n')
  } finally {
    await killQuietly(...ids)
  }
})

test('runtimeClass runc is honoured and reported everywhere', { timeout: 120_000 }, async () => {
  const ids = []
  try {
    const runc = await createSandbox({ templateID: 'base', runtimeClass: 'runc', timeout: 120, metadata: { suite: RUN, rc: 'runc' } })
    ids.push(runc.sandboxID)
    assert.equal(runc.runtimeClass, 'runc')
    const gv = await createSandbox({ templateID: 'base', runtimeClass: 'gvisor', timeout: 120, metadata: { suite: RUN, rc: 'gvisor' } })
    ids.push(gv.sandboxID)
    assert.equal(gv.runtimeClass, 'gvisor')
    assert.equal((await detail(runc.sandboxID)).runtimeClass, 'runc')
    const listed = await listAll(`metadata=${docMetadataQuery({ suite: RUN, rc: 'runc' })}`)
    assert.deepEqual(listed.map((s) => [s.sandboxID, s.runtimeClass]), [[runc.sandboxID, 'runc']])
    // The isolation is real: runc shares the host's kernel, gVisor has its own.
    const host = release()
    assert.equal((await openClient(Sandbox, runc).commands.run('uname -r')).stdout.trim(), host, 'runc runs on the host kernel')
    assert.notEqual((await openClient(Sandbox, gv).commands.run('uname -r')).stdout.trim(), host, 'gVisor does not')
  } finally {
    await killQuietly(...ids)
  }
})

test('volumeMounts at create naming no volume of the team: 400 naming the mount', { timeout: 10_000 }, async () => {
  for (const path of ['/sandboxes', '/v2/sandboxes']) {
    const res = await call('POST', path, { body: { templateID: 'base', volumeMounts: [{ name: 'vol', path: '/data' }] } })
    const msg = assertError(res, 400, 'volumeMounts')
    assert.match(msg, /volume mount #0: volume 'vol' not found/)
  }
})

test('lists: v1 and v2, metadata filter as clients encode it, state filter, X-Next-Token paging', { timeout: 180_000 }, async () => {
  const tag = `${RUN}-list`
  const ids = []
  try {
    for (let i = 0; i < 4; i++) {
      ids.push((await createSandbox({ templateID: 'base', timeout: 300, metadata: { suite: tag, idx: String(i), 'a b': 'c&d' } })).sandboxID)
    }
    ids.push((await createSandbox({ templateID: 'base', timeout: 300, metadata: { suite: `${tag}x`, 'a b': 'c&d' } })).sandboxID)
    assertNoContent(await call('POST', `/sandboxes/${ids[1]}/pause`))
    const mine = ids.slice(0, 4).sort()
    const q = clientMetadataQuery({ suite: tag })

    // v1: running sandboxes only, unpaginated.
    const v1 = await call('GET', `/sandboxes?metadata=${q}`)
    assert.equal(v1.status, 200, v1.text)
    assert.deepEqual(v1.json.map((s) => s.sandboxID).sort(), [ids[0], ids[2], ids[3]].sort())
    v1.json.forEach((s) => assertListedShape(s, { what: 'v1 listed' }))
    assert.ok(v1.json.every((s) => s.state === 'running'))

    // v2 pages of 1, following X-Next-Token.
    const seen = []
    let token = ''
    let pages = 0
    do {
      const res = await call('GET', `/v2/sandboxes?metadata=${q}&limit=1${token ? `&nextToken=${encodeURIComponent(token)}` : ''}`)
      assert.equal(res.status, 200, res.text)
      assert.ok(res.json.length <= 1, 'a page holds at most limit items')
      res.json.forEach((s) => assertListedShape(s, { what: 'v2 listed' }))
      seen.push(...res.json.map((s) => s.sandboxID))
      token = res.headers.get('x-next-token') || ''
      pages++
      assert.ok(pages <= 10, 'paging ends')
    } while (token)
    assert.deepEqual([...seen].sort(), mine, 'every match exactly once across pages')
    assert.ok(pages >= 4, `${pages} pages of one`)

    const state = async (s) => (await listAll(`metadata=${q}&state=${s}`)).map((x) => `${x.sandboxID}:${x.state}`).sort()
    assert.deepEqual(await state('paused'), [`${ids[1]}:paused`])
    assert.deepEqual(await state('running'), [ids[0], ids[2], ids[3]].map((id) => `${id}:running`).sort())
    assert.equal((await state('running,paused')).length, 4)
    assert.equal((await listAll(`metadata=${q}&state=running&state=paused`)).length, 4, 'exploded state form')
    assert.equal((await listAll(`metadata=${q}`)).length, 4, 'both states by default')

    // The three encodings of one filter select the same sandboxes.
    const two = { suite: tag, idx: '2', 'a b': 'c&d' }
    for (const enc of [clientMetadataQuery(two), docMetadataQuery(two)]) {
      assert.deepEqual((await listAll(`metadata=${enc}`)).map((s) => s.sandboxID), [ids[2]], `metadata=${enc}`)
    }
    const literal = (await listAll('metadata=a%2520b%3Dc%2526d')).map((s) => s.sandboxID)
    assert.deepEqual(literal.filter((id) => ids.includes(id)).sort(), [...ids].sort(), 'the documented example a%2520b%3Dc%2526d')
    assert.deepEqual(await listAll(`metadata=${docMetadataQuery({ suite: tag, 'a b': 'c' })}`), [], 'a partly matching filter')

    const asc = await listAll(`metadata=${q}&order=asc`)
    const times = asc.map((s) => Date.parse(s.startedAt))
    assert.deepEqual(times, [...times].sort((a, b) => a - b), 'order=asc is oldest first')
    const desc = await listAll(`metadata=${q}&order=desc`)
    assert.deepEqual(desc.map((s) => s.sandboxID), asc.map((s) => s.sandboxID).reverse())
  } finally {
    await killQuietly(...ids)
  }
})

test('timeout sets the end (204), refreshes only extend it (204)', { timeout: 60_000 }, async () => {
  const { sandboxID: id } = await createSandbox({ templateID: 'base', timeout: 120, metadata: { suite: RUN } })
  try {
    assertNoContent(await call('POST', `/sandboxes/${id}/timeout`, { body: { timeout: 600 } }))
    endsIn((await detail(id)).endAt, 600)
    assertNoContent(await call('POST', `/sandboxes/${id}/timeout`, { body: { timeout: 60 } }))
    endsIn((await detail(id)).endAt, 60, 5, 'timeout shortens')
    assertNoContent(await call('POST', `/sandboxes/${id}/refreshes`, { body: { duration: 10 } }))
    endsIn((await detail(id)).endAt, 60, 5, 'a shorter refresh does not shorten')
    assertNoContent(await call('POST', `/sandboxes/${id}/refreshes`, { body: { duration: 900 } }))
    endsIn((await detail(id)).endAt, 900, 5, 'a longer refresh extends')
    assertNoContent(await call('POST', `/sandboxes/${id}/timeout`, { body: { timeout: 30 } }))
    assertNoContent(await call('POST', `/sandboxes/${id}/refreshes`))
    endsIn((await detail(id)).endAt, 300, 5, 'a refresh without a body extends by the default')
    assertNoContent(await call('POST', `/sandboxes/${id}/refreshes`, { body: {} }))
    endsIn((await detail(id)).endAt, 300, 5, 'refresh {}')
  } finally {
    await killQuietly(id)
  }
})

test('pause 204 then 409; resume 201 then 409; connect 200 when running, 201 when resumed', { timeout: 120_000 }, async () => {
  const created = await createSandbox({ templateID: 'base', timeout: 300, metadata: { suite: RUN } })
  const id = created.sandboxID
  try {
    const sbx = openClient(Sandbox, created)
    await sbx.files.write('/tmp/pr.txt', 'pause-resume')
    const probe = await startProbe(sbx)

    assertNoContent(await call('POST', `/sandboxes/${id}/pause`))
    assertError(await call('POST', `/sandboxes/${id}/pause`, { body: {} }), 409, 'already paused')
    assertError(await call('POST', `/sandboxes/${id}/pause`, { body: { memory: true } }), 409)
    assert.equal((await detail(id)).state, 'paused')
    const proxied = await fetch(new URL('/health', process.env.E2B_SANDBOX_URL), { headers: { 'E2b-Sandbox-Id': id, 'E2b-Sandbox-Port': '49983' } })
    assert.equal(proxied.status, 502, 'the proxy does not reach a paused sandbox')
    assert.equal((await proxied.json()).code, 502)

    const resumed = await call('POST', `/sandboxes/${id}/resume`, { body: { timeout: 200 } })
    assert.equal(resumed.status, 201, resumed.text)
    assertSandboxShape(resumed.json, 'resumed')
    assert.equal(resumed.json.sandboxID, id)
    assert.equal(resumed.json.envdAccessToken, created.envdAccessToken)
    endsIn((await detail(id)).endAt, 200, 5, 'resume sets a fresh end')
    assertError(await call('POST', `/sandboxes/${id}/resume`), 409, 'already running')
    assert.equal((await detail(id)).state, 'running')
    await assertProbeContinues(sbx, probe, undefined, 'the probe after resume')

    for (const path of [`/sandboxes/${id}/connect`, `/v2/sandboxes/${id}/connect`]) {
      const c = await call('POST', path, { body: { timeout: 10 } })
      assert.equal(c.status, 200, `${path} on a running sandbox: ${c.text}`)
      assertSandboxShape(c.json, 'connected')
      endsIn((await detail(id)).endAt, 200, 5, 'connect never shortens')
    }
    for (const path of [`/sandboxes/${id}/connect`, `/v2/sandboxes/${id}/connect`]) {
      assertNoContent(await call('POST', `/sandboxes/${id}/pause`))
      const c = await call('POST', path, { body: { timeout: 400 } })
      assert.equal(c.status, 201, `${path} on a paused sandbox: ${c.text}`)
      assertSandboxShape(c.json, 'connected')
      assert.equal(c.json.sandboxID, id)
      endsIn((await detail(id)).endAt, 400, 5, 'connect to a paused sandbox')
      assert.equal((await detail(id)).state, 'running')
    }
    assert.equal(await sbx.files.read('/tmp/pr.txt'), 'pause-resume')
    await assertProbeContinues(sbx, probe, undefined, 'the probe after connects')
  } finally {
    await killQuietly(id)
  }
})

test('logs: lifecycle lines, oldest first; start and limit', { timeout: 60_000 }, async () => {
  const { sandboxID: id } = await createSandbox({ templateID: 'base', timeout: 120, metadata: { suite: RUN } })
  try {
    assertNoContent(await call('POST', `/sandboxes/${id}/pause`))
    assert.equal((await call('POST', `/sandboxes/${id}/resume`)).status, 201)
    const res = await call('GET', `/sandboxes/${id}/logs`)
    assert.equal(res.status, 200, res.text)
    const logs = res.json.logs
    assert.ok(Array.isArray(logs) && logs.length >= 3, `some lines: ${res.text}`)
    for (const l of logs) {
      assert.equal(typeof l.line, 'string')
      assert.ok(!Number.isNaN(Date.parse(l.timestamp)), `timestamp ${l.timestamp}`)
    }
    const ts = logs.map((l) => Date.parse(l.timestamp))
    assert.deepEqual(ts, [...ts].sort((a, b) => a - b), 'oldest first')
    const text = logs.map((l) => l.line).join('\n')
    for (const re of [/created/, /running/, /paused/, /resumed/]) assert.match(text, re)

    const two = await call('GET', `/sandboxes/${id}/logs?limit=2`)
    assert.deepEqual(two.json.logs, logs.slice(0, 2), 'limit=2: the two oldest')
    assert.deepEqual((await call('GET', `/sandboxes/${id}/logs?limit=0`)).json.logs, [])
    const mid = logs[Math.floor(logs.length / 2)]
    const startMs = Math.ceil(Date.parse(mid.timestamp))
    const later = (await call('GET', `/sandboxes/${id}/logs?start=${startMs}`)).json.logs
    assert.ok(later.length > 0 && later.length < logs.length, `start=${startMs}: ${later.length} of ${logs.length}`)
    assert.ok(later.every((l) => Date.parse(l.timestamp) >= startMs - 1), 'no line before start')
    assert.deepEqual(later, logs.filter((l) => Date.parse(l.timestamp) >= Date.parse(later[0].timestamp)))
  } finally {
    await killQuietly(id)
  }
})

test('logs: pausing does not repeat console lines', { timeout: 60_000 }, async () => {
  const { sandboxID: id } = await createSandbox({ templateID: 'base', timeout: 120, metadata: { suite: RUN } })
  try {
    // The daemon's own lines are structured, with the time it wrote them.
    const daemonLines = async () => (await call('GET', `/sandboxes/${id}/logs`)).json.logEntries
      .filter((e) => e.fields.logger === 'console' && e.fields.time).map((e) => `${e.fields.time} ${e.message}`)
    await eventually(async () => (await daemonLines()).some((l) => l.endsWith(' envd listening')), 10_000, 'the daemon start line in the log')
    for (let i = 0; i < 2; i++) {
      assertNoContent(await call('POST', `/sandboxes/${id}/pause`))
      assert.equal((await call('POST', `/sandboxes/${id}/resume`)).status, 201)
    }
    // Each carries its own time, so each must be printed once.
    const daemon = await daemonLines()
    assert.ok(daemon.length > 0)
    const repeated = daemon.filter((l, i) => daemon.indexOf(l) !== i)
    assert.deepEqual(repeated, [], `console lines logged more than once: ${JSON.stringify(daemon)}`)
  } finally {
    await killQuietly(id)
  }
})

test('metrics: samples with every field; start and end bound them', { timeout: 60_000 }, async () => {
  const { sandboxID: id } = await createSandbox({ templateID: 'base', timeout: 120, metadata: { suite: RUN } })
  try {
    const res = await call('GET', `/sandboxes/${id}/metrics`)
    assert.equal(res.status, 200, res.text)
    assert.ok(res.json.length >= 1, 'a running sandbox has a sample')
    for (const m of res.json) {
      assert.ok(!Number.isNaN(Date.parse(m.timestamp)))
      assert.equal(m.timestampUnix, Math.floor(Date.parse(m.timestamp) / 1000))
      assert.equal(m.cpuCount, 2)
      for (const f of ['cpuUsedPct', 'memUsed', 'memTotal', 'memCache', 'diskUsed', 'diskTotal']) {
        assert.equal(typeof m[f], 'number', f)
      }
      assert.ok(m.memTotal > 0 && m.memUsed > 0 && m.diskTotal > 0)
    }
    const now = Math.floor(Date.now() / 1000)
    const windowed = await call('GET', `/sandboxes/${id}/metrics?start=${now - 60}&end=${now + 1}`)
    assert.equal(windowed.status, 200)
    assert.ok(windowed.json.length >= 1)
    assert.ok(windowed.json.every((m) => m.timestampUnix >= now - 60 && m.timestampUnix <= now + 1))
    assert.deepEqual((await call('GET', `/sandboxes/${id}/metrics?start=${now - 7200}&end=${now - 3600}`)).json, [])
    assert.deepEqual((await call('GET', `/sandboxes/${id}/metrics?start=${now + 3600}`)).json, [])
    // The sampler adds more every few seconds.
    await eventually(async () => (await call('GET', `/sandboxes/${id}/metrics`)).json.length >= 2, 15_000, 'a second sample', 500)
  } finally {
    await killQuietly(id)
  }
})

test('kill: 204 then 404; every route on a killed or unknown sandbox is 404', { timeout: 60_000 }, async () => {
  const { sandboxID: id } = await createSandbox({ templateID: 'base', timeout: 120, metadata: { suite: RUN } })
  try {
    assertNoContent(await call('DELETE', `/sandboxes/${id}`))
    for (const sid of [id, 'unknown0sandbox0id', 'Not-A-Valid-ID']) {
      assertError(await call('DELETE', `/sandboxes/${sid}`), 404)
      assertError(await call('GET', `/sandboxes/${sid}`), 404)
      assertError(await call('POST', `/sandboxes/${sid}/timeout`, { body: { timeout: 60 } }), 404)
      assertError(await call('POST', `/sandboxes/${sid}/refreshes`, { body: {} }), 404)
      assertError(await call('POST', `/sandboxes/${sid}/pause`), 404)
      assertError(await call('POST', `/sandboxes/${sid}/resume`), 404)
      assertError(await call('POST', `/sandboxes/${sid}/connect`), 404)
      assertError(await call('POST', `/v2/sandboxes/${sid}/connect`), 404)
      assertError(await call('GET', `/sandboxes/${sid}/logs`), 404)
      assertError(await call('GET', `/sandboxes/${sid}/metrics`), 404)
    }
    assert.ok(!(await listAll()).some((s) => s.sandboxID === id), 'not listed')
    await assertNoHostProcess(id)
  } finally {
    await killQuietly(id)
  }
})

test('invalid input: 400 naming the field, and nothing is created', { timeout: 60_000 }, async () => {
  const { sandboxID: id } = await createSandbox({ templateID: 'base', timeout: 120, metadata: { suite: RUN } })
  try {
    const count = async () => (await listAll()).length
    const before = await count()
    for (const r of invalidRequests(id)) {
      const res = await call(r.method, r.path, { body: r.body })
      const msg = assertError(res, 400)
      assert.ok(msg.startsWith(r.field), `${r.name}: ${r.method} ${r.path} ${typeof r.body === 'string' ? r.body : JSON.stringify(r.body)}: message ${JSON.stringify(msg)} names ${r.field}`)
    }
    assert.equal(await count(), before, 'no invalid create made a sandbox')
    assert.equal((await detail(id)).state, 'running', 'invalid calls left the sandbox alone')
    endsIn((await detail(id)).endAt, 120, 10)
  } finally {
    await killQuietly(id)
  }
})

test('GET /nodes: the local node is ready, with its machine, its limits and the sandboxes it holds', { timeout: 60_000 }, async () => {
  const sb = await createSandbox({ templateID: 'base', metadata: { suite: RUN } })
  try {
    let last
    const node = await eventually(async () => {
      last = await call('GET', '/nodes')
      assert.equal(last.status, 200, last.text)
      assert.equal(last.json.length, 1, `one node: ${last.text}`)
      const n = last.json[0]
      return n.sandboxCount >= 1 && n.createSuccesses >= 1 && n
    }, 20_000, 'a heartbeat with the new sandbox').catch((e) => { throw new Error(`${e.message}; last answer ${last?.text}`) })
    assert.equal(node.id, 'local')
    assert.equal(node.status, 'ready')
    assert.ok(node.version !== '', 'the agent names its build')
    assert.equal(node.metrics.cpuCount, cpus().length, 'the host\'s CPUs')
    assert.ok(Math.abs(node.metrics.memoryTotalBytes - totalmem()) < 64 << 20, `the host's memory: ${node.metrics.memoryTotalBytes} vs ${totalmem()}`)
    assert.ok(node.metrics.memoryUsedBytes > 0 && node.metrics.memoryUsedBytes < node.metrics.memoryTotalBytes)
    assert.ok(node.metrics.allocatedCPU >= 1, `committed vCPUs: ${node.metrics.allocatedCPU}`)
    assert.ok(node.limitCPU >= node.metrics.allocatedCPU && node.limitMemoryBytes > 0)
    const [disk] = node.metrics.disks
    assert.ok(disk.mountPoint.startsWith('/') && disk.filesystemType !== '' && disk.usedBytes > 0 && disk.usedBytes <= disk.totalBytes,
      `the data directory's disk: ${JSON.stringify(disk)}`)
    assert.ok(Date.now() - Date.parse(node.lastHeartbeat) < 30_000, `a recent heartbeat: ${node.lastHeartbeat}`)
  } finally {
    await killQuietly(sb.sandboxID)
  }
})

test('POST /nodes/local draining: creates answer 503 while the node\'s sandboxes go on; ready takes them again', { timeout: 120_000 }, async () => {
  const sb = await createSandbox({ templateID: 'base', metadata: { suite: RUN } })
  try {
    assertNoContent(await call('POST', '/nodes/local', { body: { status: 'draining' } }))
    try {
      const listed = await call('GET', '/nodes')
      assert.equal(listed.json?.[0]?.status, 'draining', listed.text)
      assertError(await call('POST', '/v2/sandboxes', { body: { templateID: 'base' } }), 503, 'draining')
      const client = await Sandbox.connect(sb.sandboxID)
      const r = await client.commands.run('echo still here')
      assert.equal(r.stdout.trim(), 'still here', 'a sandbox of the draining node goes on')
    } finally {
      assertNoContent(await call('POST', '/nodes/local', { body: { status: 'ready' } }))
    }
    const again = await createSandbox({ templateID: 'base', metadata: { suite: RUN } })
    await killQuietly(again.sandboxID)
  } finally {
    await killQuietly(sb.sandboxID)
  }
})

test('unknown routes and methods answer with the error body', { timeout: 10_000 }, async () => {
  assertError(await call('GET', '/nope'), 404)
  assertError(await call('PUT', '/sandboxes'), 405)
  assertError(await call('PATCH', '/v2/sandboxes'), 405)
})

test('auth: a missing, wrong or revoked key is 401 on every route', { timeout: 60_000 }, async () => {
  const { sandboxID: id } = await createSandbox({ templateID: 'base', timeout: 120, metadata: { suite: RUN } })
  const routes = [
    ['POST', '/sandboxes'], ['POST', '/v2/sandboxes'], ['GET', '/sandboxes'], ['GET', '/v2/sandboxes'],
    ['GET', `/sandboxes/${id}`], ['DELETE', `/sandboxes/${id}`], ['POST', `/sandboxes/${id}/timeout`],
    ['POST', `/sandboxes/${id}/refreshes`], ['POST', `/sandboxes/${id}/pause`], ['POST', `/sandboxes/${id}/resume`],
    ['POST', `/sandboxes/${id}/connect`], ['POST', `/v2/sandboxes/${id}/connect`], ['GET', `/sandboxes/${id}/logs`],
    ['GET', `/sandboxes/${id}/metrics`],
  ]
  try {
    const out = execFileSync(LELANTOS, ['keys', '--data-dir', process.env.E2E_DATA_DIR, 'create', `e2e-${RUN}`], { encoding: 'utf8', timeout: 30_000 })
    const keyID = /created key (\S+) /.exec(out)?.[1]
    const key = out.trim().split('\n').pop()
    assert.ok(keyID, `key ID in ${out}`)
    assert.match(key, /^e2b_[0-9a-f]{40}$/)
    assert.equal((await call('GET', '/v2/sandboxes', { key })).status, 200, 'a new key works')
    execFileSync(LELANTOS, ['keys', '--data-dir', process.env.E2E_DATA_DIR, 'revoke', keyID], { timeout: 30_000 })

    for (const [name, bad] of [['missing', null], ['empty', ''], ['wrong', `e2b_${'0'.repeat(40)}`], ['revoked', key]]) {
      for (const [method, path] of routes) {
        const body = method === 'POST' ? {} : undefined
        assertError(await call(method, path, { key: bad, body }), 401)
      }
      assert.equal((await call('GET', '/health', { key: bad })).status, 200, `${name} key: /health needs none`)
    }
    const d = await detail(id)
    assert.equal(d.state, 'running', 'unauthenticated calls changed nothing')
    endsIn(d.endAt, 120, 10)
  } finally {
    await killQuietly(id)
  }
})

test('restart: a running and a paused sandbox survive with memory and files', { timeout: 240_000 }, async () => {
  const tag = `${RUN}-restart`
  const ids = []
  try {
    const boxes = {}
    for (const role of ['running', 'paused']) {
      const c = await createSandbox({ templateID: 'base', timeout: 600, metadata: { suite: tag, role } })
      ids.push(c.sandboxID)
      const sbx = openClient(Sandbox, c)
      await sbx.files.write('/home/user/role.txt', role)
      boxes[role] = { c, sbx, probe: await startProbe(sbx) }
    }
    assertNoContent(await call('POST', `/sandboxes/${boxes.paused.c.sandboxID}/pause`))

    await restartServer()

    const listed = await listAll(`metadata=${docMetadataQuery({ suite: tag })}`)
    assert.deepEqual(listed.map((s) => `${s.metadata.role}:${s.sandboxID}:${s.state}`).sort(),
      [`paused:${boxes.paused.c.sandboxID}:paused`, `running:${boxes.running.c.sandboxID}:running`])
    assert.equal((await detail(boxes.running.c.sandboxID)).state, 'running')
    assert.equal((await detail(boxes.paused.c.sandboxID)).state, 'paused')

    // The running one answers at once, its process alive and unchanged.
    const run = boxes.running
    assert.equal((await run.sbx.commands.run('cat /home/user/role.txt')).stdout, 'running')
    await assertProbeContinues(run.sbx, run.probe, undefined, 'the running sandbox\'s probe after the restart')

    // The paused one resumes through connect with its memory and files.
    const c = await call('POST', `/sandboxes/${boxes.paused.c.sandboxID}/connect`, { body: { timeout: 300 } })
    assert.equal(c.status, 201, c.text)
    const paused = openClient(Sandbox, c.json)
    assert.equal(await paused.files.read('/home/user/role.txt'), 'paused')
    await assertProbeContinues(paused, boxes.paused.probe, undefined, 'the paused sandbox\'s probe after restart and connect')

    // A sandbox made after the restart does not collide with the adopted ones.
    const fresh = await createSandbox({ templateID: 'base', timeout: 120, metadata: { suite: tag, role: 'fresh' } })
    ids.push(fresh.sandboxID)
    assert.equal((await openClient(Sandbox, fresh).commands.run('cat /home/user/role.txt 2>/dev/null || echo none')).stdout, 'none\n')
    await assertProbeContinues(run.sbx, run.probe, undefined, 'the adopted sandbox next to a new one')
    assert.equal((await run.sbx.commands.run('cat /home/user/role.txt')).stdout, 'running')
  } finally {
    await killQuietly(...ids)
  }
})

test('race: 50 concurrent pause/resume/connect/timeout/refresh calls end consistent and usable', { timeout: 300_000 }, async () => {
  const created = await createSandbox({ templateID: 'base', timeout: 300, metadata: { suite: `${RUN}-race` } })
  const id = created.sandboxID
  try {
    const sbx = openClient(Sandbox, created)
    await sbx.files.write('/tmp/race.txt', 'race')
    const probe = await startProbe(sbx)
    const results = await fireAll(raceOps(id, { pause: 12, resume: 10, connect: 14, timeout: 3, refresh: 3, get: 8 }))
    const { pauses, resumes } = checkRace(results, { killed: false })
    console.log('race:', summarize(results))
    assert.ok(pauses >= 1, 'at least one pause won')

    const d = await detail(id)
    assert.equal(d.state, pauses > resumes ? 'paused' : 'running', `the final state follows the successful calls (${pauses} pauses, ${resumes} resumes)`)
    const listed = await listAll(`metadata=${docMetadataQuery({ suite: `${RUN}-race` })}`)
    assert.deepEqual(listed.map((s) => [s.sandboxID, s.state]), [[id, d.state]], 'the list agrees with the detail')
    if (d.state === 'paused') {
      assert.equal((await call('POST', `/sandboxes/${id}/connect`)).status, 201)
    }
    assert.equal(await sbx.files.read('/tmp/race.txt'), 'race')
    await assertProbeContinues(sbx, probe, undefined, 'the probe after the race')
    assert.equal((await detail(id)).state, 'running')
  } finally {
    await killQuietly(id)
  }
})

test('race: concurrent lifecycle calls with kills: exactly one kill wins, the sandbox is gone', { timeout: 300_000 }, async () => {
  const created = await createSandbox({ templateID: 'base', timeout: 300, metadata: { suite: `${RUN}-race-kill` } })
  const id = created.sandboxID
  try {
    // Spread over two seconds, the kills in the middle: calls run before,
    // during and after the one that wins.
    const ops = raceOps(id, { pause: 10, resume: 8, connect: 10, kill: 5, timeout: 3, refresh: 4, get: 10 })
    const results = await fireAll(ops, (op) => op === 'kill' ? 500 + Math.random() * 1000 : Math.random() * 2000)
    checkRace(results, { killed: true })
    console.log('race with kills:', summarize(results))
    const kill = results.find((r) => r.op === 'kill' && r.status === 204)
    assert.ok(kill, 'a kill succeeded')
    const won = results.filter((r) => ['pause', 'resume', 'connect'].includes(r.op) && r.status < 300).length
    assert.ok(won >= 1, 'some lifecycle calls ran before the kill')
    const after = results.filter((r) => r.sentAt > kill.doneAt)
    assert.deepEqual(after.filter((r) => r.status !== 404).map((r) => `${r.op} ${r.status}`), [],
      `every call sent after the kill answered is 404 (${after.length} such calls)`)
    assert.equal(results.filter((r) => r.op === 'kill' && r.status === 204).length, 1, 'exactly one kill succeeded')
    assertError(await call('GET', `/sandboxes/${id}`), 404)
    assert.deepEqual(await listAll(`metadata=${docMetadataQuery({ suite: `${RUN}-race-kill` })}`), [], 'not listed')
    assertError(await call('POST', `/sandboxes/${id}/connect`), 404)
    assert.equal(await openClient(Sandbox, created).isRunning(), false, 'the proxy does not reach it')
    await assertNoHostProcess(id)
    // Later calls after the kill were all 404: nothing resurrected it.
    await sleep(1_500)
    assertError(await call('GET', `/sandboxes/${id}`), 404)
  } finally {
    await killQuietly(id)
  }
})
