// Egress rules and ingress settings of sandboxes, through the e2b client as its
// users call it: network.allowOut / denyOut with addresses and domains (over
// HTTPS by the TLS server name, over HTTP by the Host header, and in DNS),
// allow beating deny, a rule change at runtime with updateNetwork, and
// allowPublicTraffic / maskRequestHost on the way in. The "internet" is a
// network namespace of this machine with its own DNS server (lib/remote.mjs);
// the server is restarted to resolve with it, and restarted back at the end.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { call, restartServer, killQuietly, eventually } from './lib/api.mjs'
import { startInternet } from './lib/remote.mjs'

const { Sandbox } = await import(process.env.E2B_PACKAGE || 'e2b-2.51.0')
const ALL_TRAFFIC = '0.0.0.0/0'
const ids = []
let net

// The probe, run inside sandboxes: one connection (or lookup), one line out.
const PROBE = String.raw`
import socket, ssl, sys
mode, ip, port, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
try:
    if mode == 'dns':
        print('addr=' + socket.gethostbyname(name))
        sys.exit(0)
    s = socket.create_connection((ip, port), timeout=4)
    s.settimeout(4)
    if mode == 'https':
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname=name if name != '-' else None)
    elif mode == 'http':
        s.sendall(('GET / HTTP/1.1\r\nHost: %s\r\n\r\n' % name).encode())
    data = s.recv(300).decode(errors='replace').strip()
    print(data or 'closed')
except Exception as e:
    print('error=%s: %s' % (type(e).__name__, e))
`

before(async () => {
  const x = Number((process.env.E2E_SUBNET || '10.234.0.0/16').split('.')[1]) % 256
  net = await startInternet(x)
  process.env.E2E_SERVE_FLAGS = `--dns-upstream ${net.dns}`
  await restartServer()
})

after(async () => {
  await killQuietly(...ids)
  delete process.env.E2E_SERVE_FLAGS
  try {
    await restartServer()
  } finally {
    net?.stop()
  }
})

/** Creates a sandbox with the client and puts the probe in it. */
async function create(opts) {
  const sbx = await Sandbox.create({ timeoutMs: 300_000, metadata: { suite: 'egress' }, ...opts })
  ids.push(sbx.sandboxId)
  await sbx.files.write('/tmp/probe.py', PROBE)
  return sbx
}

/** What the probe saw: "host=<name> local=<address>", "addr=<address>", or "error=...". */
async function probe(sbx, mode, ip, port, name = '-') {
  const r = await sbx.commands.run(`python3 /tmp/probe.py ${mode} ${ip} ${port} ${name}`, { timeoutMs: 30_000 })
  return r.stdout.trim()
}

const reached = (out, local, name) => {
  assert.match(out, new RegExp(`^host=${name ?? '\\S+'} local=${local.replaceAll('.', '\\.')}$`), `reached ${local}: ${out}`)
}
const refused = (out, what) => assert.doesNotMatch(out, /^host=/, `${what} must be refused: ${out}`)

test('denyOut of an address, and allow beating deny', { timeout: 120_000 }, async () => {
  const deny = await create({ network: { denyOut: [net.denied] } })
  refused(await probe(deny, 'tcp', net.denied, 8080), 'a denied address')
  reached(await probe(deny, 'tcp', net.allowed, 8080), net.allowed)
  refused(await probe(deny, 'https', net.denied, 443, 'denied.e2e.test'), 'a denied address over HTTPS')

  const beat = await create({ network: { allowOut: [net.cidr], denyOut: [ALL_TRAFFIC] } })
  reached(await probe(beat, 'tcp', net.cidr, 8080), net.cidr)
  refused(await probe(beat, 'tcp', net.allowed, 8080), 'an address outside allowOut')
  const info = await beat.getInfo()
  assert.deepEqual(info.network?.allowOut, [net.cidr])
  assert.deepEqual(info.network?.denyOut, [ALL_TRAFFIC])
})

test('allowOut of a domain: HTTPS by server name, HTTP by Host, DNS by name', { timeout: 120_000 }, async () => {
  const sbx = await create({ network: { allowOut: ['allowed.e2e.test', '*.allowed.e2e.test'], denyOut: [ALL_TRAFFIC] } })
  reached(await probe(sbx, 'https', net.allowed, 443, 'allowed.e2e.test'), net.allowed, 'allowed.e2e.test')
  reached(await probe(sbx, 'https', net.allowed, 443, 'www.allowed.e2e.test'), net.allowed, 'www.allowed.e2e.test')
  reached(await probe(sbx, 'http', net.allowed, 80, 'allowed.e2e.test'), net.allowed, 'allowed.e2e.test')
  refused(await probe(sbx, 'https', net.denied, 443, 'denied.e2e.test'), 'a name outside allowOut over HTTPS')
  refused(await probe(sbx, 'http', net.denied, 80, 'denied.e2e.test'), 'a name outside allowOut over HTTP')
  refused(await probe(sbx, 'https', net.denied, 443), 'HTTPS without a server name')
  refused(await probe(sbx, 'tcp', net.allowed, 8080), 'another port of an allowed name')
  // A made-up name does not reach the address it was sent to, only the name's own.
  reached(await probe(sbx, 'https', net.denied, 443, 'allowed.e2e.test'), net.allowed, 'allowed.e2e.test')
  assert.equal(await probe(sbx, 'dns', '-', 0, 'allowed.e2e.test'), `addr=${net.allowed}`)
  assert.match(await probe(sbx, 'dns', '-', 0, 'denied.e2e.test'), /^error=/)
})

test('allowOut of a domain without denying all traffic is refused', { timeout: 30_000 }, async () => {
  await assert.rejects(Sandbox.create({ network: { allowOut: ['allowed.e2e.test'] } }), /ALL_TRAFFIC/)
  await assert.rejects(Sandbox.create({ network: { denyOut: ['denied.e2e.test'] } }), /invalid denied CIDR/)
})

test('updateNetwork replaces the rules of a running sandbox at once', { timeout: 120_000 }, async () => {
  const sbx = await create({})
  reached(await probe(sbx, 'tcp', net.denied, 8080), net.denied)
  await sbx.updateNetwork({ denyOut: [net.denied] })
  refused(await probe(sbx, 'tcp', net.denied, 8080), 'an address denied at runtime')
  reached(await probe(sbx, 'tcp', net.allowed, 8080), net.allowed)

  await Sandbox.updateNetwork(sbx.sandboxId, { allowOut: ['denied.e2e.test'], denyOut: [ALL_TRAFFIC] })
  reached(await probe(sbx, 'https', net.denied, 443, 'denied.e2e.test'), net.denied, 'denied.e2e.test')
  refused(await probe(sbx, 'https', net.allowed, 443, 'allowed.e2e.test'), 'a name no longer allowed')

  // A full replace: leaving everything out clears the rules.
  await sbx.updateNetwork({})
  reached(await probe(sbx, 'tcp', net.allowed, 8080), net.allowed)
  const info = await sbx.getInfo()
  assert.equal(info.network?.allowOut, undefined)

  await assert.rejects(Sandbox.updateNetwork('nosuchsandbox0000000', { denyOut: [net.denied] }), (e) => e.name === 'SandboxNotFoundError')
  await sbx.pause()
  const res = await call('PUT', `/sandboxes/${sbx.sandboxId}/network`, { body: { denyOut: [net.denied] } })
  assert.equal(res.status, 409)
})

test('the rules survive a server restart', { timeout: 180_000 }, async () => {
  const sbx = await create({ network: { denyOut: [net.denied] } })
  await restartServer()
  await eventually(async () => (await call('GET', `/sandboxes/${sbx.sandboxId}`)).status === 200, 30_000, 'the sandbox after the restart')
  refused(await probe(sbx, 'tcp', net.denied, 8080), 'a denied address after a restart')
  reached(await probe(sbx, 'tcp', net.allowed, 8080), net.allowed)
})

/** Starts a server on port in sbx that answers with the request's Host header. */
async function serveHost(sbx, port) {
  await sbx.commands.run(`python3 -c "
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = self.headers.get('Host', '').encode()
        self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)
http.server.HTTPServer(('0.0.0.0', ${port}), H).serve_forever()"`, { background: true })
}

/** GET / of port of a sandbox through the sandbox proxy. */
async function viaProxy(id, port, headers = {}) {
  const res = await fetch(new URL('/', process.env.E2B_SANDBOX_URL), {
    headers: { 'E2b-Sandbox-Id': id, 'E2b-Sandbox-Port': String(port), ...headers }, signal: AbortSignal.timeout(10_000),
  })
  return { status: res.status, text: await res.text() }
}

test('maskRequestHost sets the Host header requests reach the sandbox with', { timeout: 60_000 }, async () => {
  const sbx = await create({ network: { maskRequestHost: 'masked.e2e.test:${PORT}' } })
  await serveHost(sbx, 8000)
  const res = await eventually(async () => {
    const r = await viaProxy(sbx.sandboxId, 8000).catch(() => null)
    return r?.status === 200 && r
  }, 20_000, 'the server in the sandbox')
  assert.equal(res.text, 'masked.e2e.test:8000')
})

test('allowPublicTraffic false needs the traffic token on the ports, not on the daemon', { timeout: 60_000 }, async () => {
  const sbx = await create({ network: { allowPublicTraffic: false } })
  assert.ok(sbx.trafficAccessToken, 'the create answer carries a traffic token')
  await serveHost(sbx, 8000)
  await eventually(async () => (await viaProxy(sbx.sandboxId, 8000, { 'e2b-traffic-access-token': sbx.trafficAccessToken }).catch(() => null))?.status === 200,
    20_000, 'the server in the sandbox')
  const missing = await viaProxy(sbx.sandboxId, 8000)
  assert.equal(missing.status, 403)
  assert.deepEqual(JSON.parse(missing.text), { sandboxId: sbx.sandboxId, code: 403,
    message: "Sandbox is secured with traffic access token. Token header 'e2b-traffic-access-token' is missing" })
  const wrong = await viaProxy(sbx.sandboxId, 8000, { 'e2b-traffic-access-token': 'nope' })
  assert.equal(wrong.status, 403)
  assert.match(JSON.parse(wrong.text).message, /is invalid/)
  // The client reaches the daemon without the traffic token (it sends its access token).
  assert.equal((await sbx.commands.run('echo daemon')).stdout.trim(), 'daemon')
})
