// Plain-HTTP helpers for the end-to-end suites: calls to the control plane
// without the e2b client, error and shape assertions, waiting, and restarting
// the server run.sh started. Settings come from the environment run.sh sets:
// E2B_API_URL, E2B_API_KEY, E2E_DATA_DIR, LELANTOS_E2E_SERVER.
import assert from 'node:assert/strict'
import { execSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

export const API_URL = process.env.E2B_API_URL
export const API_KEY = process.env.E2B_API_KEY

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Polls fn until it returns a truthy value or timeoutMs passes. */
export async function eventually(fn, timeoutMs = 10_000, what = 'condition', everyMs = 100) {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(everyMs)
  }
}

/**
 * Calls the API: method, path (with query), and options body (an object is
 * sent as JSON, a string as is), key (null sends no X-API-Key) and headers.
 * Returns { status, headers, text, json } (json is undefined for an empty or
 * non-JSON body). Requests are bounded by timeoutMs.
 */
export async function call(method, path, { body, key = API_KEY, headers = {}, timeoutMs = 120_000 } = {}) {
  const h = { ...headers }
  if (key !== null) h['X-API-Key'] = key
  let payload
  if (body !== undefined) {
    payload = typeof body === 'string' ? body : JSON.stringify(body)
    h['Content-Type'] = 'application/json'
  }
  const res = await fetch(new URL(path, API_URL), { method, headers: h, body: payload, signal: AbortSignal.timeout(timeoutMs) })
  const text = await res.text()
  let json
  if (text !== '') {
    try { json = JSON.parse(text) } catch { json = undefined }
  }
  return { status: res.status, headers: res.headers, text, json, what: `${method} ${path}` }
}

/** Asserts a successful bodiless answer: 204 and nothing in the body. */
export function assertNoContent(res) {
  assert.equal(res.status, 204, `${res.what}: ${res.status} ${res.text}`)
  assert.equal(res.text, '', `${res.what}: a 204 has no body`)
}

/**
 * Asserts an error answer: the status, a JSON body {code, message} with code
 * equal to the status and a message; when mentions is given, the message
 * must contain it (a field name, say). Returns the message.
 */
export function assertError(res, status, mentions) {
  assert.equal(res.status, status, `${res.what}: want ${status}, got ${res.status} ${res.text}`)
  assert.match(res.headers.get('content-type') || '', /application\/json/, `${res.what}: error content type`)
  assert.ok(res.json && typeof res.json === 'object', `${res.what}: error body is JSON: ${res.text}`)
  assert.equal(res.json.code, status, `${res.what}: body code equals the status: ${res.text}`)
  assert.equal(typeof res.json.message, 'string', `${res.what}: message is a string`)
  assert.ok(res.json.message.length > 0, `${res.what}: message is not empty`)
  if (mentions !== undefined) {
    assert.ok(res.json.message.includes(mentions), `${res.what}: message ${JSON.stringify(res.json.message)} mentions ${JSON.stringify(mentions)}`)
  }
  return res.json.message
}

/** Asserts the Sandbox shape (the answer of create, resume and connect). */
export function assertSandboxShape(sb, what = 'sandbox') {
  assert.equal(typeof sb.templateID, 'string', `${what}.templateID`)
  assert.match(sb.sandboxID, /^[a-z0-9]+$/, `${what}.sandboxID`)
  assert.equal(typeof sb.clientID, 'string', `${what}.clientID`)
  assert.match(sb.envdVersion, /^\d+\.\d+\.\d+/, `${what}.envdVersion is semver`)
  assert.equal(typeof sb.envdAccessToken, 'string', `${what}.envdAccessToken`)
  assert.ok(sb.envdAccessToken.length >= 16, `${what}.envdAccessToken is issued`)
  assert.ok(sb.trafficAccessToken === null || typeof sb.trafficAccessToken === 'string', `${what}.trafficAccessToken`)
  assert.ok(sb.domain === null || typeof sb.domain === 'string', `${what}.domain`)
  assertClassFields(sb, what)
}

/** Asserts the ListedSandbox shape; the detail adds to it (detail=true). */
export function assertListedShape(sb, { detail = false, what = 'listed sandbox' } = {}) {
  for (const f of ['templateID', 'sandboxID', 'clientID', 'envdVersion', 'state']) {
    assert.equal(typeof sb[f], 'string', `${what}.${f}`)
  }
  assert.ok(['running', 'paused'].includes(sb.state), `${what}.state ${sb.state}`)
  for (const f of ['startedAt', 'endAt']) {
    assert.ok(!Number.isNaN(Date.parse(sb[f])), `${what}.${f} is a date: ${sb[f]}`)
  }
  for (const f of ['cpuCount', 'memoryMB', 'diskSizeMB']) {
    assert.ok(Number.isInteger(sb[f]), `${what}.${f} is an integer: ${sb[f]}`)
  }
  assert.equal(typeof sb.metadata, 'object', `${what}.metadata`)
  assert.ok(Array.isArray(sb.volumeMounts), `${what}.volumeMounts is an array`)
  assertClassFields(sb, what)
  if (detail) {
    assert.equal(typeof sb.envdAccessToken, 'string', `${what}.envdAccessToken`)
    assert.ok(sb.domain === null || typeof sb.domain === 'string', `${what}.domain`)
    assert.ok(['kill', 'pause'].includes(sb.lifecycle?.onTimeout), `${what}.lifecycle.onTimeout`)
    assert.equal(typeof sb.lifecycle.autoResume, 'boolean', `${what}.lifecycle.autoResume`)
  } else {
    assert.equal(sb.envdAccessToken, undefined, `${what} has no token`)
  }
}

/** workloadType and runtimeClass, on every sandbox shape. */
function assertClassFields(sb, what) {
  assert.equal(sb.workloadType, 'compute', `${what}.workloadType`)
  assert.ok(['gvisor', 'runc'].includes(sb.runtimeClass), `${what}.runtimeClass ${sb.runtimeClass}`)
}

/**
 * The metadata list filter exactly as the JS client sends it: each key and
 * value URI-encoded, joined by URLSearchParams, and the whole encoded again
 * as the query value.
 */
export function clientMetadataQuery(md) {
  const pairs = Object.fromEntries(Object.entries(md).map(([k, v]) => [encodeURIComponent(k), encodeURIComponent(v)]))
  return encodeURIComponent(new URLSearchParams(pairs).toString())
}

/** The metadata filter in the documented form: k=v&k2=v2 (parts escaped), escaped again. */
export function docMetadataQuery(md) {
  return encodeURIComponent(Object.entries(md).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&'))
}

/** Creates a sandbox by POST /v2/sandboxes and returns its Sandbox answer. */
export async function createSandbox(body = { templateID: 'base' }, path = '/v2/sandboxes') {
  const res = await call('POST', path, { body })
  assert.equal(res.status, 201, `${res.what}: ${res.text}`)
  assertSandboxShape(res.json, 'created')
  return res.json
}

/** GET /sandboxes/{id}, asserting 200. */
export async function detail(id) {
  const res = await call('GET', `/sandboxes/${id}`)
  assert.equal(res.status, 200, `${res.what}: ${res.text}`)
  return res.json
}

/** Lists every sandbox a v2 query selects, following X-Next-Token. */
export async function listAll(query = '', { limit = 100, maxPages = 50 } = {}) {
  const out = []
  let token = ''
  for (let page = 0; page < maxPages; page++) {
    const q = `${query}${query ? '&' : ''}limit=${limit}${token ? `&nextToken=${encodeURIComponent(token)}` : ''}`
    const res = await call('GET', `/v2/sandboxes?${q}`)
    assert.equal(res.status, 200, `${res.what}: ${res.text}`)
    out.push(...res.json)
    token = res.headers.get('x-next-token') || ''
    if (!token) return out
  }
  throw new Error(`listing did not end after ${maxPages} pages`)
}

/** Kills sandboxes, ignoring failures (for finally blocks). */
export async function killQuietly(...ids) {
  await Promise.all(ids.filter(Boolean).map((id) => call('DELETE', `/sandboxes/${id}`, { timeoutMs: 60_000 }).catch(() => {})))
}

/**
 * Restarts the server on the same data directory and ports with
 * $LELANTOS_E2E_SERVER restart and waits until the API answers again.
 */
export async function restartServer() {
  const cmd = process.env.LELANTOS_E2E_SERVER
  assert.ok(cmd, 'LELANTOS_E2E_SERVER is set (run the suite with tests/e2e/run.sh)')
  const pidFile = join(process.env.E2E_DATA_DIR, 'server.pid')
  const before = readFileSync(pidFile, 'utf8').trim()
  execSync(`${cmd} restart`, { stdio: ['ignore', 'inherit', 'inherit'], timeout: 120_000 })
  const after = readFileSync(pidFile, 'utf8').trim()
  assert.notEqual(after, before, 'a new server process')
  assert.throws(() => process.kill(Number(before), 0), 'the old server process is gone')
  await eventually(async () => {
    try {
      return (await call('GET', '/health', { key: null, timeoutMs: 2_000 })).status === 200
    } catch {
      return false
    }
  }, 60_000, 'the restarted server to answer /health', 200)
}
