// Shared pieces of the adversarial suite: the server under attack (configured by
// run.sh through the e2b client's environment), sandboxes per runtime class, a
// prober that tries many TCP/UDP targets from inside a sandbox at once, host
// listeners that count what reaches them, and a neighbour's latency meter.
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { networkInterfaces } from 'node:os'
import { Sandbox } from 'e2b'

export { Sandbox }

/** The runtime classes the server under attack enables, e.g. ['gvisor', 'runc']. */
export const CLASSES = (process.env.ESCAPE_CLASSES || 'gvisor').split(',').filter(Boolean)
export const API = process.env.E2B_API_URL
export const KEY = process.env.E2B_API_KEY
/** A key of another team (the attacker's), made by run.sh. */
export const KEY_B = process.env.ESCAPE_KEY_B
export const SANDBOX_URL = process.env.E2B_SANDBOX_URL

/** Calls the control plane's API with key (default: the victim's) and returns {status, body}. */
export async function api(method, path, { key = KEY, body, headers = {} } = {}) {
  const h = { ...headers }
  if (key !== null) h['X-API-Key'] = key
  if (body !== undefined) h['Content-Type'] = 'application/json'
  const res = await fetch(API + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) })
  const text = await res.text()
  let json
  try { json = JSON.parse(text) } catch { json = undefined }
  return { status: res.status, body: json, text }
}

/** Creates a sandbox of a runtime class for the victim team and kills it when the test ends. */
export async function sandbox(t, runtimeClass = 'gvisor', opts = {}) {
  const res = await api('POST', '/v2/sandboxes', {
    body: { templateID: 'base', timeout: 600, runtimeClass, metadata: { suite: 'escape' }, ...opts },
  })
  assert.equal(res.status, 201, `create ${runtimeClass}: ${res.text}`)
  const sbx = new Sandbox({
    sandboxId: res.body.sandboxID, envdAccessToken: res.body.envdAccessToken,
    envdVersion: res.body.envdVersion, sandboxDomain: res.body.domain || undefined,
  })
  sbx.created = res.body
  t.after(() => api('DELETE', `/sandboxes/${res.body.sandboxID}`).catch(() => {}))
  return sbx
}

/** Runs cmd in sbx (as root unless user is given) and returns {exitCode, stdout, stderr}, never throwing on exit codes. */
export async function sh(sbx, cmd, { user = 'root', timeoutMs = 60_000 } = {}) {
  try {
    const r = await sbx.commands.run(cmd, { user, timeoutMs })
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr }
  } catch (e) {
    if (e.exitCode === undefined) throw e
    return { exitCode: e.exitCode, stdout: e.stdout ?? '', stderr: e.stderr ?? '' }
  }
}

const PROBER = String.raw`
import json, socket, sys, concurrent.futures as cf
def probe(t):
    host, port, proto = t
    fam = socket.AF_INET6 if ':' in host else socket.AF_INET
    try:
        s = socket.socket(fam, socket.SOCK_STREAM if proto == 'tcp' else socket.SOCK_DGRAM)
        s.settimeout(2)
        if proto == 'tcp':
            s.connect((host, port))
            return True
        # A DNS query for example.com A: any resolver answers it, other UDP
        # services see a datagram they may answer or not.
        q = b'\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01'
        s.sendto(q, (host, port))
        s.recvfrom(64)
        return True
    except Exception:
        return False
    finally:
        s.close()
targets = json.loads(sys.argv[1])
with cf.ThreadPoolExecutor(64) as ex:
    res = list(ex.map(probe, [tuple(t) for t in targets]))
print(json.dumps([t[0] + ' ' + str(t[1]) + '/' + t[2] for t, ok in zip(targets, res) if ok]))
`

/** Tries every [host, port, 'tcp'|'udp'] target from inside sbx; returns the list of those that answered. */
export async function reachableFrom(sbx, targets) {
  await sbx.files.write('/tmp/lelantos-prober.py', PROBER)
  const arg = JSON.stringify(targets).replaceAll("'", "'\\''")
  const r = await sh(sbx, `python3 /tmp/lelantos-prober.py '${arg}'`, { timeoutMs: 120_000 })
  assert.equal(r.exitCode, 0, `prober: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop())
}

/** Every address of the host's interfaces (IPv4 and IPv6, link-local ones with their zone dropped). */
export function hostAddresses() {
  const out = new Set()
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs) out.add(a.address.split('%')[0])
  }
  return [...out]
}

/** A TCP listener on every host address (0.0.0.0 and ::) that counts connections. Closed when the test ends. */
export async function hostListener(t) {
  const srv = createServer((c) => { srv.hits++; c.destroy() })
  srv.hits = 0
  await new Promise((resolve, reject) => srv.once('error', reject).listen({ port: 0, host: '::', ipv6Only: false }, resolve))
  t.after(() => srv.close())
  return srv
}

/** Median and max latency in ms of n `true` commands in sbx, one after another. */
export async function latency(sbx, n = 15) {
  const ms = []
  for (let i = 0; i < n; i++) {
    const start = performance.now()
    await sbx.commands.run('true', { timeoutMs: 60_000 })
    ms.push(performance.now() - start)
  }
  ms.sort((a, b) => a - b)
  return { median: ms[Math.floor(n / 2)], max: ms[n - 1] }
}

/** Polls fn until it returns a truthy value or timeoutMs passes. */
export async function eventually(fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}
