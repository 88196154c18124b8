// End-to-end tests of teams: a second API key in a second team, made with
// `bin/lelantos keys create NAME --team TEAM` on the server's data directory,
// drives the real npm e2b client against the first key's sandbox and private
// template, and finds neither; the first key's sandbox is untouched. run.sh runs
// this file once, with the newest client.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { API_KEY, call } from './lib/api.mjs'

const { Sandbox, NotFoundError, SandboxNotFoundError } = await import(process.env.E2B_PACKAGE || 'e2b-2.51.0')
const LELANTOS = fileURLToPath(new URL('../../bin/lelantos', import.meta.url))
const RUN = randomBytes(3).toString('hex')
const TEAM_B = `e2e-team-${RUN}`
const PRIVATE = `e2e-private-${RUN}`
const UNKNOWN = 'zzzzzzzzzzzzzzzzzzzz'

/** Runs bin/lelantos; resolves {code, stdout, stderr} whatever the exit code. */
function cli(args, timeoutMs = 600_000) {
  return new Promise((resolve) => {
    execFile(LELANTOS, args, { env: process.env, timeout: timeoutMs, maxBuffer: 16 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr, what: `lelantos ${args.join(' ')}` }))
  })
}

/** Asserts that p rejects with the client's sandbox-not-found error. */
async function rejectsNotFound(p, what) {
  await assert.rejects(p, (err) => {
    assert.ok(err instanceof NotFoundError && err instanceof SandboxNotFoundError,
      `${what}: want SandboxNotFoundError, got ${err?.name}: ${err?.message}`)
    return true
  })
}

let keyB
const cleanups = []

test.before(async () => {
  const res = await cli(['keys', 'create', `e2e-b-${RUN}`, '--team', TEAM_B, '--data-dir', process.env.E2E_DATA_DIR])
  assert.equal(res.code, 0, `${res.what}: ${res.stdout}${res.stderr}`)
  assert.match(res.stdout, new RegExp(`created team ${TEAM_B}`), res.stdout)
  keyB = res.stdout.match(/^e2b_[0-9a-f]{40}$/m)?.[0]
  assert.ok(keyB, `the key is printed: ${res.stdout}`)
  const listed = await cli(['keys', 'list', '--team', TEAM_B, '--data-dir', process.env.E2E_DATA_DIR])
  assert.equal(listed.code, 0, listed.stderr)
  assert.match(listed.stdout, new RegExp(`\\s${TEAM_B}\\s+e2e-b-${RUN}\\s`), listed.stdout)
})

test.after(async () => {
  for (const fn of cleanups.reverse()) await fn().catch(() => {})
})

test('another team cannot reach a sandbox: connect, getInfo, list, setTimeout, pause, kill', { timeout: 300_000 }, async () => {
  const sbx = await Sandbox.create('base', { apiKey: API_KEY, timeoutMs: 300_000, metadata: { suite: RUN } })
  cleanups.push(() => Sandbox.kill(sbx.sandboxId, { apiKey: API_KEY }))
  const before = await Sandbox.getInfo(sbx.sandboxId, { apiKey: API_KEY })
  const asB = { apiKey: keyB }

  await rejectsNotFound(Sandbox.connect(sbx.sandboxId, asB), 'connect')
  await rejectsNotFound(Sandbox.getInfo(sbx.sandboxId, asB), 'getInfo')
  await rejectsNotFound(Sandbox.setTimeout(sbx.sandboxId, 1_000, asB), 'setTimeout')
  await rejectsNotFound(Sandbox.pause(sbx.sandboxId, asB), 'pause')
  assert.equal(await Sandbox.kill(sbx.sandboxId, asB), false, 'kill answers "not found" (false)')

  const listed = []
  const paginator = Sandbox.list({ ...asB, query: { state: ['running', 'paused'] } })
  while (paginator.hasNext) listed.push(...await paginator.nextItems())
  assert.ok(!listed.some((s) => s.sandboxId === sbx.sandboxId), 'team B does not list the sandbox')

  // The answers are exactly those of an unknown ID, and carry no token.
  for (const path of [`/sandboxes/%s`, `/sandboxes/%s/logs`, `/sandboxes/%s/metrics`]) {
    const got = await call('GET', path.replace('%s', sbx.sandboxId), { key: keyB })
    const ref = await call('GET', path.replace('%s', UNKNOWN), { key: keyB })
    assert.equal(got.status, 404, `${got.what}: ${got.text}`)
    assert.equal(got.text, ref.text.replaceAll(UNKNOWN, sbx.sandboxId), `${got.what} answers as for an unknown ID`)
  }
  const connected = await call('POST', `/v2/sandboxes/${sbx.sandboxId}/connect`, { key: keyB, body: { timeout: 600 } })
  assert.equal(connected.status, 404, connected.text)
  assert.ok(!connected.text.includes('envdAccessToken'), 'no token in the answer')

  // Team A's sandbox is as it was: running, same end, still usable.
  const after = await Sandbox.getInfo(sbx.sandboxId, { apiKey: API_KEY })
  assert.equal(after.state, 'running')
  assert.equal(after.endAt.getTime(), before.endAt.getTime(), 'team B did not move the end time')
  const r = await sbx.commands.run('echo still here')
  assert.equal(r.stdout, 'still here\n')
})

test('only the operator sees the nodes: another team\'s key gets 403 from GET /nodes', { timeout: 30_000 }, async () => {
  const res = await call('GET', '/nodes', { key: keyB })
  assert.equal(res.status, 403, res.text)
  assert.match(res.json?.message ?? '', /operator/, res.text)
  const mine = await call('GET', '/nodes')
  assert.equal(mine.status, 200, `the default team's key lists them: ${mine.text}`)
})

test('another team cannot create from a private template, but can from base', { timeout: 900_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lelantos-e2e-teams-'))
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'Dockerfile'), 'FROM base\nENV E2E_PRIVATE=1\n')
  const built = await cli(['template', 'build', '-n', PRIVATE, dir])
  assert.equal(built.code, 0, `${built.what}: ${built.stdout}${built.stderr}`)
  cleanups.push(() => call('DELETE', `/templates/${PRIVATE}`))

  const own = await Sandbox.create(PRIVATE, { apiKey: API_KEY, timeoutMs: 120_000 })
  cleanups.push(() => Sandbox.kill(own.sandboxId, { apiKey: API_KEY }))
  assert.equal((await own.commands.run('echo $E2E_PRIVATE')).stdout, '1\n', 'team A uses its template')

  const notFound = new RegExp(`400: templateID: template "${PRIVATE}" not found`)
  await assert.rejects(Sandbox.create(PRIVATE, { apiKey: keyB, timeoutMs: 60_000 }), notFound)
  await assert.rejects(Sandbox.create({ template: PRIVATE, apiKey: keyB, timeoutMs: 60_000 }), notFound)
  const seen = await call('GET', `/templates/${PRIVATE}`, { key: keyB })
  const unknown = await call('GET', `/templates/none-${RUN}`, { key: keyB })
  assert.equal(seen.status, 404, seen.text)
  assert.equal(seen.text, unknown.text.replaceAll(`none-${RUN}`, PRIVATE), 'as for an unknown template')
  const list = await call('GET', '/templates', { key: keyB })
  assert.equal(list.status, 200, list.text)
  assert.ok(!list.json.some((t) => t.templateID === PRIVATE || t.names.includes(PRIVATE)), 'not listed for team B')
  assert.ok(list.json.some((t) => t.templateID === 'base' && t.public), 'base is listed, public')

  const fromBase = await Sandbox.create('base', { apiKey: keyB, timeoutMs: 60_000 })
  try {
    assert.equal((await fromBase.commands.run('echo ok')).stdout, 'ok\n')
    await rejectsNotFound(Sandbox.getInfo(fromBase.sandboxId, { apiKey: API_KEY }), 'team A reaching team B\'s sandbox')
  } finally {
    await Sandbox.kill(fromBase.sandboxId, { apiKey: keyB })
  }
})
