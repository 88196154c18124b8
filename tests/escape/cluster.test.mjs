// Unauthenticated to the cluster: a paused sandbox's image and a snapshot's
// (their memory) leave their node only for a control-plane certificate of the
// cluster CA, and the control plane's cluster endpoint (serve --cluster-listen),
// where nodes report and fetch templates' trees and kept images, hears only
// node certificates of that CA. No certificate, another CA's and the wrong
// role's all fail; a sandbox cannot reach the endpoint either. run.sh makes
// both CAs.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:https'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { api, hostAddresses, reachableFrom, sandbox, sh } from './lib.mjs'

const AGENT = process.env.ESCAPE_AGENT
const CLUSTER = process.env.ESCAPE_CLUSTER
const DIR = process.env.ESCAPE_AGENT_TLS_DIR
const STRANGER = process.env.ESCAPE_STRANGER_TLS_DIR
const read = (dir, f) => readFileSync(join(dir, f))

/**
 * Sends method path to addr over TLS with certificate name of dir (none when
 * name is null), trusting the cluster CA; resolves to { status, bytes } or
 * rejects when the connection is refused.
 */
function call(addr, method, path, { dir = DIR, name, body } = {}) {
  const [host, port] = addr.split(':')
  const opts = {
    host, port: Number(port), method, path, ca: read(DIR, 'ca.pem'), servername: host, timeout: 20_000,
    headers: body ? { 'Content-Type': 'application/json' } : {}, ALPNProtocols: ['http/1.1'],
  }
  if (name) Object.assign(opts, { cert: read(dir, `${name}.pem`), key: read(dir, `${name}-key.pem`) })
  return new Promise((resolve, reject) => {
    const req = request(opts, (res) => {
      let bytes = 0
      res.on('data', (d) => { bytes += d.length })
      res.on('end', () => resolve({ status: res.statusCode, bytes }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('timed out')))
    req.on('error', reject)
    req.end(body ? JSON.stringify(body) : undefined)
  })
}

/** Asserts that every attempt is refused at the connection. */
async function refusedAll(attempts) {
  for (const [what, attempt] of attempts) {
    await assert.rejects(attempt(), (e) => {
      assert.ok(e instanceof Error, `${what}: ${e}`)
      return true
    }, `${what}: must not get through`)
  }
}

test('a paused sandbox\'s image leaves its node only for the control plane\'s certificate', { timeout: 180_000 }, async (t) => {
  const sbx = await sandbox(t)
  assert.equal((await sh(sbx, 'echo secret in memory > /dev/shm/secret')).exitCode, 0)
  const paused = await api('POST', `/sandboxes/${sbx.sandboxId}/pause`)
  assert.equal(paused.status, 204, paused.text)
  const path = `/images/v1/${sbx.sandboxId}`
  // The attacks below can succeed: the control plane gets the image.
  const ok = await call(AGENT, 'GET', path, { name: 'control-plane' })
  assert.equal(ok.status, 200)
  assert.ok(ok.bytes > 1 << 20, `the image is ${ok.bytes} bytes`)
  await refusedAll([
    ['no client certificate', () => call(AGENT, 'GET', path, { name: null })],
    ['another CA\'s control-plane certificate', () => call(AGENT, 'GET', path, { dir: STRANGER, name: 'control-plane' })],
    ['a node\'s certificate of the CA', () => call(AGENT, 'GET', path, { name: 'node' })],
  ])
})

test('a snapshot\'s image leaves its node only for the control plane\'s certificate', { timeout: 180_000 }, async (t) => {
  const sbx = await sandbox(t)
  assert.equal((await sh(sbx, 'echo secret in memory > /dev/shm/secret')).exitCode, 0)
  const snap = await api('POST', `/sandboxes/${sbx.sandboxId}/snapshots`, { body: {} })
  assert.equal(snap.status, 201, snap.text)
  t.after(() => api('DELETE', `/templates/${encodeURIComponent(snap.body.snapshotID)}`).catch(() => {}))
  // The node keeps each snapshot under its build's ID.
  const builds = readdirSync(join(process.env.ESCAPE_DATA_DIR, 'node', 'snapshots')).filter((d) => /^[a-z0-9]+$/.test(d))
  assert.ok(builds.length > 0, 'the node holds the snapshot')
  const path = `/snapshots/v1/${builds[0]}`
  // The attacks below can succeed: the control plane gets the snapshot.
  const ok = await call(AGENT, 'GET', path, { name: 'control-plane' })
  assert.equal(ok.status, 200)
  assert.ok(ok.bytes > 1 << 20, `the snapshot is ${ok.bytes} bytes`)
  await refusedAll([
    ['no client certificate', () => call(AGENT, 'GET', path, { name: null })],
    ['another CA\'s control-plane certificate', () => call(AGENT, 'GET', path, { dir: STRANGER, name: 'control-plane' })],
    ['a node\'s certificate of the CA', () => call(AGENT, 'GET', path, { name: 'node' })],
  ])
})

test('the cluster endpoint hears only node certificates of the cluster CA', { timeout: 60_000 }, async () => {
  const unknown = `/artifacts/v1/sha256:${'0'.repeat(64)}`
  const heartbeat = '/lelantos.cluster.v1.ClusterService/Heartbeat'
  const body = { agentAddress: '127.0.0.1:1', report: {} }
  // The attacks below can succeed: a node of the CA reaches the endpoint.
  const ok = await call(CLUSTER, 'GET', unknown, { name: 'node' })
  assert.equal(ok.status, 404)
  const attempts = []
  for (const [what, opts] of [
    ['no client certificate', { name: null }],
    ['another CA\'s node certificate', { dir: STRANGER, name: 'node' }],
    ['a control plane\'s certificate of the CA', { name: 'control-plane' }],
  ]) {
    attempts.push([`${what}, a tree`, () => call(CLUSTER, 'GET', unknown, opts)])
    attempts.push([`${what}, a heartbeat`, () => call(CLUSTER, 'POST', heartbeat, { ...opts, body })])
  }
  await refusedAll(attempts)
  const nodes = await api('GET', '/nodes')
  assert.equal(nodes.status, 200, nodes.text)
  assert.deepEqual(nodes.body.map((n) => n.nodeID ?? n.id), ['local'], 'no node was registered by the attempts')
})

test('a sandbox cannot reach the cluster endpoint on any host address', { timeout: 120_000 }, async (t) => {
  const sbx = await sandbox(t)
  const port = Number(CLUSTER.split(':')[1])
  const reached = await reachableFrom(sbx, hostAddresses().map((a) => [a, port, 'tcp']))
  assert.deepEqual(reached, [], `reached from inside: ${reached.join(', ')}`)
})
