// Unauthenticated to the node: the agent RPC served over TCP (--agent-listen)
// answers only a control-plane certificate of the cluster CA. Plain HTTP, TLS
// without a client certificate, a certificate of another CA and the node's own
// certificate presented as a client's all fail to list or kill sandboxes; a
// sandbox cannot reach the listener, which listens on every host address,
// either. run.sh makes both CAs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:https'
import { request as plainRequest } from 'node:http'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { hostAddresses, reachableFrom, sandbox } from './lib.mjs'

const ADDR = process.env.ESCAPE_AGENT
const DIR = process.env.ESCAPE_AGENT_TLS_DIR
const STRANGER = process.env.ESCAPE_STRANGER_TLS_DIR
const [HOST, PORT] = ADDR.split(':')
const read = (dir, f) => readFileSync(join(dir, f))

/**
 * Calls an agent procedure over TLS with the client certificate name of dir
 * (none when null), trusting the cluster CA; resolves to { status, body } or
 * rejects when the connection is refused.
 */
function rpc(procedure, body, { dir = DIR, name = 'control-plane' } = {}) {
  const opts = {
    host: HOST, port: Number(PORT), method: 'POST', path: `/lelantos.agent.v1.AgentService/${procedure}`,
    headers: { 'Content-Type': 'application/json' }, ca: read(DIR, 'ca.pem'), servername: HOST, timeout: 10_000,
  }
  if (name) Object.assign(opts, { cert: read(dir, `${name}.pem`), key: read(dir, `${name}-key.pem`) })
  return new Promise((resolve, reject) => {
    const req = request(opts, (res) => {
      let text = ''
      res.on('data', (d) => { text += d })
      res.on('end', () => resolve({ status: res.statusCode, text }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

test('the agent answers the control plane\'s certificate (the attacks below can succeed)', { timeout: 60_000 }, async (t) => {
  const sbx = await sandbox(t)
  const res = await rpc('ListSandboxes', {})
  assert.equal(res.status, 200, res.text)
  assert.ok(res.text.includes(sbx.sandboxId), `the list names the sandbox: ${res.text.slice(0, 300)}`)
})

test('the agent refuses plain HTTP, no client certificate, another CA\'s and a node\'s certificate', { timeout: 60_000 }, async (t) => {
  const sbx = await sandbox(t)
  const kill = { sandboxId: sbx.sandboxId }
  const plain = await new Promise((resolve) => {
    const req = plainRequest({ host: HOST, port: Number(PORT), method: 'POST', path: '/lelantos.agent.v1.AgentService/KillSandbox',
      headers: { 'Content-Type': 'application/json' }, timeout: 10_000 }, (res) => {
      let text = ''
      res.on('data', (d) => { text += d })
      res.on('end', () => resolve({ status: res.statusCode, text }))
    })
    req.on('error', (e) => resolve({ error: e.message }))
    req.end(JSON.stringify(kill))
  })
  assert.ok(plain.error || plain.status === 400, `plain HTTP: ${JSON.stringify(plain)}`)
  for (const [what, opts] of [
    ['no client certificate', { name: null }],
    ['another CA\'s control-plane certificate', { dir: STRANGER }],
    ['the node\'s own certificate as a client\'s', { name: 'node' }],
  ]) {
    await assert.rejects(rpc('KillSandbox', kill, opts), (e) => {
      assert.ok(e instanceof Error, `${what}: ${e}`)
      return true
    }, `${what}: the call must not get through`)
  }
  const still = await rpc('ListSandboxes', {})
  assert.ok(still.text.includes(sbx.sandboxId), 'the sandbox was not killed by any of the attempts')
})

/**
 * Opens the node's sandbox tunnel to authority (CONNECT) with the
 * control-plane certificate and, when it is answered 200, sends request on it;
 * resolves to { status } of the CONNECT and the tunnelled answer's first line.
 */
function tunnel(authority, request) {
  return new Promise((resolve, reject) => {
    const req = requestWith({ method: 'CONNECT', path: authority })
    req.on('connect', (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy()
        return resolve({ status: res.statusCode })
      }
      let text = ''
      socket.on('data', (d) => { text += d })
      socket.on('end', () => resolve({ status: 200, answer: text.split('\r\n')[0] }))
      socket.on('error', reject)
      socket.end(request)
    })
    req.on('response', (res) => { res.resume(); resolve({ status: res.statusCode }) })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end()
  })
}

/** An HTTPS request to the agent with the control-plane certificate. */
function requestWith(extra) {
  return request({
    host: HOST, port: Number(PORT), ca: read(DIR, 'ca.pem'), servername: HOST, timeout: 10_000,
    cert: read(DIR, 'control-plane.pem'), key: read(DIR, 'control-plane-key.pem'), ALPNProtocols: ['http/1.1'], ...extra,
  })
}

test('the node\'s sandbox tunnel reaches a sandbox by its ID and nothing else', { timeout: 60_000 }, async (t) => {
  const sbx = await sandbox(t)
  const health = 'GET /health HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n\r\n'
  const ok = await tunnel(`${sbx.sandboxId}:49983`, health)
  assert.equal(ok.status, 200, 'CONNECT to the sandbox')
  assert.match(ok.answer ?? '', /^HTTP\/1\.1 2\d\d/, `the daemon answered through the tunnel: ${ok.answer}`)
  for (const [authority, want] of [
    ['127.0.0.1:22', 404], [`${HOST}:${PORT}`, 404], ['localhost:9090', 404], ['[::1]:22', 404],
    ['nosuchsandbox:49983', 404], [`${sbx.sandboxId}:0`, 400], [`${sbx.sandboxId}`, 400],
  ]) {
    const res = await tunnel(authority, health)
    assert.equal(res.status, want, `CONNECT ${authority}: ${JSON.stringify(res)}`)
  }
})

test('a sandbox cannot reach the agent\'s TCP listener on any host address', { timeout: 120_000 }, async (t) => {
  const sbx = await sandbox(t)
  const targets = hostAddresses().map((a) => [a, Number(PORT), 'tcp'])
  const reached = await reachableFrom(sbx, targets)
  assert.deepEqual(reached, [], `reached from inside: ${reached.join(', ')}`)
})
