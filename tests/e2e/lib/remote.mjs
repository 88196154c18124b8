// A stand-in for the internet, for the egress suite: a network namespace
// joined to this machine by a veth, with a DNS server for a few test names and
// servers that tell each client what they saw (the HTTP Host header or the TLS
// server name, and the address they were reached at). No outside address is
// ever used. Run as a script (`node remote.mjs serve <dir>`) it is those
// servers, started inside the namespace by startInternet.
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The test network's addresses; x is 0..255, from the server's subnet, so two suites on one machine differ. */
export function addresses(x) {
  const net = `198.19.${x}`
  return {
    host: `${net}.126`, // this machine's end of the link (the lower /25)
    remote: `${net}.1`, // the namespace, and its DNS server
    allowed: `${net}.129`, // allowed.e2e.test, www.allowed.e2e.test
    denied: `${net}.130`, // denied.e2e.test
    cidr: `${net}.131`, // cidr.e2e.test
  }
}

const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })

/**
 * Makes the namespace and starts its servers; returns the addresses, the DNS
 * server's address:port and stop(), which removes everything again.
 */
export async function startInternet(x) {
  const a = addresses(x)
  const ns = `e2eeg${randomBytes(3).toString('hex')}`
  const dir = mkdtempSync(join(tmpdir(), 'lelantos-egress-'))
  const cleanups = [() => rmSync(dir, { recursive: true, force: true })]
  const stop = () => {
    for (const c of cleanups.reverse()) {
      try { c() } catch { /* already gone */ }
    }
  }
  try {
    ip('netns', 'add', ns)
    cleanups.push(() => ip('netns', 'del', ns))
    ip('link', 'add', ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
    cleanups.push(() => ip('link', 'del', ns))
    ip('addr', 'add', `${a.host}/25`, 'dev', ns)
    ip('link', 'set', ns, 'up')
    ip('-n', ns, 'addr', 'add', `${a.remote}/25`, 'dev', 'eth0')
    ip('-n', ns, 'link', 'set', 'eth0', 'up')
    ip('-n', ns, 'link', 'set', 'lo', 'up')
    for (const addr of [a.allowed, a.denied, a.cidr]) {
      ip('-n', ns, 'addr', 'add', `${addr}/32`, 'dev', 'lo')
      ip('route', 'add', `${addr}/32`, 'via', a.remote)
      cleanups.push(() => ip('route', 'del', `${addr}/32`))
    }
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=e2e.test', '-days', '1'], { stdio: 'ignore' })
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, fileURLToPath(import.meta.url), 'serve', dir, String(x)],
      { stdio: ['ignore', 'pipe', 'inherit'] })
    cleanups.push(() => child.kill('SIGKILL'))
    await new Promise((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`the test network's servers exited (${code})`)))
      child.stdout.on('data', (d) => { if (String(d).includes('ready')) resolve() })
    })
  } catch (e) {
    stop()
    throw e
  }
  return { ...a, dns: `${a.remote}:53`, stop }
}

/** Answers an HTTP request with n bytes (a random MiB, repeated), minding backpressure. */
function sendBytes(sock, n) {
  const block = randomBytes(1 << 20)
  sock.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${n}\r\nConnection: close\r\n\r\n`)
  let left = n
  const more = () => {
    while (left > 0) {
      const chunk = left >= block.length ? block : block.subarray(0, left)
      left -= chunk.length
      if (!sock.write(chunk)) return sock.once('drain', more)
    }
    sock.end()
  }
  more()
}

/** The servers, inside the namespace. */
async function serve(dir, x) {
  const net = await import('node:net')
  const tls = await import('node:tls')
  const dgram = await import('node:dgram')
  const a = addresses(x)
  const zone = {
    'allowed.e2e.test': a.allowed, 'www.allowed.e2e.test': a.allowed, 'denied.e2e.test': a.denied, 'cidr.e2e.test': a.cidr,
  }
  const told = (sock, host) => sock.write(`host=${host || '-'} local=${sock.localAddress.replace(/^::ffff:/, '')}\n`)
  const echo = (sock) => sock.on('data', (d) => sock.write(d))
  const listen = (srv, port) => new Promise((r) => srv.listen(port, '0.0.0.0', r))

  // Port 80: the Host header of the request head; GET /bytes/N answers N bytes
  // (the benchmarks' downloads).
  const http = net.createServer((sock) => {
    let head = ''
    const onData = (d) => {
      head += d
      if (!head.includes('\r\n\r\n')) return
      sock.off('data', onData)
      const bulk = head.match(/^GET \/bytes\/(\d+) /)
      if (bulk) return sendBytes(sock, Number(bulk[1]))
      told(sock, (head.match(/^host:\s*([^\r\n]*)/im) || [])[1]?.trim())
      echo(sock)
    }
    sock.on('data', onData)
    sock.on('error', () => {})
  })
  // Port 443: the TLS server name.
  const https = tls.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (sock) => {
    told(sock, sock.servername)
    echo(sock)
    sock.on('error', () => {})
  })
  https.on('tlsClientError', () => {})
  // Port 8080: plain TCP.
  const plain = net.createServer((sock) => { told(sock, ''); echo(sock); sock.on('error', () => {}) })
  // Port 53: A records of the zone, NXDOMAIN for other names.
  const dns = dgram.createSocket('udp4')
  dns.on('message', (q, from) => {
    if (q.length < 12) return
    let off = 12
    const labels = []
    while (off < q.length && q[off] !== 0) {
      labels.push(q.subarray(off + 1, off + 1 + q[off]).toString())
      off += 1 + q[off]
    }
    const end = off + 5
    if (end > q.length) return
    const qtype = q.readUInt16BE(off + 1)
    const addr = zone[labels.join('.').toLowerCase()]
    const head = Buffer.from(q.subarray(0, end))
    head[2] = 0x81
    head[3] = addr ? 0x80 : 0x83 // NOERROR or NXDOMAIN
    head.writeUInt16BE(0, 8)
    head.writeUInt16BE(0, 10)
    const answer = addr && qtype === 1
    head.writeUInt16BE(answer ? 1 : 0, 6)
    const rr = answer ? Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, ...addr.split('.').map(Number)]) : Buffer.alloc(0)
    dns.send(Buffer.concat([head, rr]), from.port, from.address)
  })
  await Promise.all([listen(http, 80), listen(https, 443), listen(plain, 8080),
    new Promise((r) => dns.bind(53, a.remote, r))])
  process.stdout.write('ready\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === 'serve') {
  await serve(process.argv[3], Number(process.argv[4]))
}
