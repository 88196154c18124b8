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

test('a sandbox cannot reach the agent\'s TCP listener on any host address', { timeout: 120_000 }, async (t) => {
  const sbx = await sandbox(t)
  const targets = hostAddresses().map((a) => [a, Number(PORT), 'tcp'])
  const reached = await reachableFrom(sbx, targets)
  assert.deepEqual(reached, [], `reached from inside: ${reached.join(', ')}`)
})
