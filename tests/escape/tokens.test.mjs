// Unauthenticated to anything: the API without a key, the in-sandbox daemon
// without its token (or with another sandbox's), a private sandbox's ports without
// the traffic token, forged signed URLs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api, sandbox, sh, SANDBOX_URL } from './lib.mjs'

/** Every API route with a placeholder id; none may answer 2xx without a valid key. */
const ROUTES = [
  ['GET', '/sandboxes'], ['GET', '/v2/sandboxes'], ['POST', '/sandboxes'], ['POST', '/v2/sandboxes'],
  ['GET', '/sandboxes/ID'], ['DELETE', '/sandboxes/ID'], ['POST', '/sandboxes/ID/timeout'],
  ['POST', '/sandboxes/ID/refreshes'], ['POST', '/sandboxes/ID/pause'], ['POST', '/sandboxes/ID/resume'],
  ['POST', '/sandboxes/ID/connect'], ['POST', '/v2/sandboxes/ID/connect'], ['GET', '/sandboxes/ID/logs'],
  ['GET', '/sandboxes/ID/metrics'], ['GET', '/templates'], ['POST', '/templates'], ['GET', '/templates/base'],
  ['DELETE', '/templates/base'], ['GET', '/teams'], ['GET', '/api-keys'], ['POST', '/api-keys'],
]

test('the API refuses every route without a key, with a malformed one and with an unknown one', { timeout: 120_000 }, async (t) => {
  const sbx = await sandbox(t)
  for (const key of [null, '', 'e2b_' + '0'.repeat(40), 'not-a-key', 'e2b_' + 'f'.repeat(39) + 'g']) {
    for (const [method, path] of ROUTES) {
      const res = await api(method, path.replace('ID', sbx.sandboxId), { key, body: method === 'POST' ? {} : undefined })
      assert.equal(res.status, 401, `${method} ${path} with key ${JSON.stringify(key)}: ${res.status} ${res.text}`)
      assert.equal(res.body?.code, 401)
    }
  }
  assert.ok((await api('GET', `/sandboxes/${sbx.sandboxId}`)).status === 200, 'the valid key still works')
})

/** Calls the daemon of id through the proxy with the given token (or none). */
async function envd(id, path, { token, method = 'POST', body = '{}', contentType = 'application/json' } = {}) {
  const headers = { 'E2b-Sandbox-Id': id, 'E2b-Sandbox-Port': '49983', 'Content-Type': contentType }
  if (token !== undefined) headers['X-Access-Token'] = token
  const res = await fetch(SANDBOX_URL + path, { method, headers, body: method === 'GET' ? undefined : body })
  return { status: res.status, text: await res.text() }
}

test('the daemon refuses calls without its token or with another sandbox\'s', { timeout: 120_000 }, async (t) => {
  const a = await sandbox(t)
  const b = await sandbox(t)
  await a.files.write('/home/user/a-secret.txt', 'only-a')
  const calls = [
    ['/filesystem.Filesystem/ListDir', JSON.stringify({ path: '/home/user' })],
    ['/filesystem.Filesystem/Stat', JSON.stringify({ path: '/home/user/a-secret.txt' })],
    ['/process.Process/List', '{}'],
    ['/envs', undefined],
  ]
  for (const token of [undefined, '', 'wrong', b.created.envdAccessToken]) {
    for (const [path, body] of calls) {
      const res = await envd(a.sandboxId, path, { token, body, method: body === undefined ? 'GET' : 'POST' })
      assert.equal(res.status, 401, `${path} with token ${token === b.created.envdAccessToken ? "of another sandbox" : JSON.stringify(token)}: ${res.status} ${res.text}`)
    }
    const dl = await fetch(`${SANDBOX_URL}/files?path=/home/user/a-secret.txt`, {
      headers: { 'E2b-Sandbox-Id': a.sandboxId, 'E2b-Sandbox-Port': '49983', ...(token === undefined ? {} : { 'X-Access-Token': token }) },
    })
    assert.equal(dl.status, 401, `download without a valid token: ${dl.status}`)
    assert.doesNotMatch(await dl.text(), /only-a/)
  }
  // Starting a process with no token must not run anything.
  const start = await envd(a.sandboxId, '/process.Process/Start', {
    contentType: 'application/connect+json',
    body: Buffer.concat([Buffer.from([0, 0, 0, 0, 60]), Buffer.from(JSON.stringify({ process: { cmd: '/bin/touch', args: ['/tmp/pwned'] } }).padEnd(60))]),
  })
  assert.notEqual(start.status, 200, `Start without a token: ${start.status} ${start.text}`)
  assert.equal((await sh(a, 'test -e /tmp/pwned && echo yes || echo no')).stdout.trim(), 'no')
})

test('a private sandbox\'s ports need the traffic token', { timeout: 120_000 }, async (t) => {
  const sbx = await sandbox(t, 'gvisor', { network: { allowPublicTraffic: false } })
  assert.ok(sbx.created.trafficAccessToken, 'a private sandbox gets a traffic token')
  await sbx.commands.run('mkdir -p /tmp/w && echo private-page > /tmp/w/index.html && cd /tmp/w && python3 -m http.server 8082', { background: true })
  const get = (headers) => fetch(SANDBOX_URL + '/', { headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '8082', ...headers } })
  let ok
  for (let i = 0; i < 50; i++) {
    ok = await get({ 'E2b-Traffic-Access-Token': sbx.created.trafficAccessToken })
    if (ok.status === 200) break
    await new Promise((r) => setTimeout(r, 100))
  }
  assert.equal(ok.status, 200, 'with the token the port answers')
  for (const h of [{}, { 'E2b-Traffic-Access-Token': 'wrong' }, { 'X-Access-Token': sbx.created.envdAccessToken }]) {
    const res = await get(h)
    assert.equal(res.status, 403, `without the traffic token: ${res.status}`)
    assert.doesNotMatch(await res.text(), /private-page/)
  }
})

test('a forged or expired signed file URL opens nothing', { timeout: 120_000 }, async (t) => {
  const sbx = await sandbox(t)
  await sbx.files.write('/home/user/signed.txt', 'signed-secret')
  const good = await sbx.downloadUrl('/home/user/signed.txt')
  const forged = [
    good.replace('signed.txt', 'other.txt'),
    good.replace(/signature=[^&]+/, 'signature=v1_' + 'A'.repeat(43)),
    good.replace(/path=[^&]+/, 'path=%2Fetc%2Fshadow'),
    good + '&username=root',
  ]
  for (const url of forged) {
    const res = await fetch(url)
    assert.notEqual(res.status, 200, `forged URL ${url}`)
    assert.doesNotMatch(await res.text(), /signed-secret|root:/)
  }
  const expired = await sbx.downloadUrl('/home/user/signed.txt', { useSignatureExpiration: -10 })
  assert.equal((await fetch(expired)).status, 401, 'an expired signature')
})
