// End-to-end tests of the in-sandbox daemon (envd) through the official npm `e2b`
// client. Run from tests/e2e after `npm ci`:
//
//   Real mode (default): a Lelantos server and the client's usual settings
//     E2B_API_URL, E2B_API_KEY, E2B_DOMAIN or E2B_SANDBOX_URL, and optionally
//     LELANTOS_TEMPLATE (default "base"). The suite calls Sandbox.create().
//   Dev mode: E2B_DEBUG=true and an envd running as root on the host (the client
//     then talks to http://localhost:49983, or to E2B_SANDBOX_URL when set). The
//     suite calls POST /init itself to give the daemon a token and env vars
//     (LELANTOS_E2E_TOKEN fixes the token, so the suite can run again against
//     the same daemon).
//
// LELANTOS_E2E_BIG_MB sets the size of the large transfer (default 1024).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { once } from 'node:events'
// E2B_PACKAGE picks the client version (an npm alias in package.json).
const { Sandbox, CommandExitError, TimeoutError } = await import(process.env.E2B_PACKAGE || 'e2b-2.51.0')

const DEV = (process.env.E2B_DEBUG || '').toLowerCase() === 'true'
const TEMPLATE = process.env.LELANTOS_TEMPLATE || 'base'
const BIG_MB = Number(process.env.LELANTOS_E2E_BIG_MB || 1024)
const RSS_LIMIT_KB = 64 * 1024
const ENVD_VERSION = '0.6.4'
const SANDBOX_ENV = { LELANTOS_E2E_SANDBOX_VAR: 'from-sandbox' }

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Polls fn until it returns a truthy value or timeoutMs passes. */
async function eventually(fn, timeoutMs = 10_000, what = 'condition') {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(50)
  }
}

let sbx
let defaultUser
let workDir
let localTmp

/** Opens the sandbox for the mode the environment selects. */
async function openSandbox() {
  if (!DEV) {
    return Sandbox.create(TEMPLATE, { timeoutMs: 20 * 60_000, envs: SANDBOX_ENV })
  }
  // Debug mode: the client skips the control plane; play its part for /init.
  const debugSbx = await Sandbox.create(TEMPLATE)
  const base = process.env.E2B_SANDBOX_URL || 'http://localhost:49983'
  // A fixed LELANTOS_E2E_TOKEN lets the suite run again against the same daemon.
  const token = process.env.LELANTOS_E2E_TOKEN || randomBytes(16).toString('hex')
  const res = await fetch(new URL('/init', base), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ envVars: SANDBOX_ENV, accessToken: token, timestamp: new Date().toISOString() }),
  })
  assert.equal(res.status, 204, `POST /init: ${res.status} ${await res.text()}`)
  return new Sandbox({
    sandboxId: debugSbx.sandboxId,
    envdVersion: ENVD_VERSION,
    envdAccessToken: token,
    debug: true,
    sandboxUrl: process.env.E2B_SANDBOX_URL,
  })
}

/** Headers a raw request to the daemon needs to be routed by the proxy. */
function routeHeaders() {
  return { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '49983' }
}

before(async () => {
  sbx = await openSandbox()
  defaultUser = (await sbx.commands.run('id -un')).stdout.trim()
  workDir = `/tmp/lelantos-e2e-${randomBytes(4).toString('hex')}`
  await sbx.commands.run(`mkdir -p ${workDir} && chmod 1777 ${workDir}`, { user: 'root' })
  localTmp = await mkdtemp(join(tmpdir(), 'lelantos-e2e-'))
}, { timeout: 120_000 })

after(async () => {
  if (sbx) {
    await sbx.commands.run(`rm -rf ${workDir}`, { user: 'root' }).catch(() => {})
    if (!DEV) await sbx.kill().catch(() => {})
  }
  if (localTmp) await rm(localTmp, { recursive: true, force: true })
})

test('envd reports the protocol version the suite targets', { timeout: 10_000 }, async () => {
  assert.ok(sbx.envdApi.version, 'the sandbox carries an envdVersion')
  if (!DEV) assert.equal(sbx.envdApi.version, ENVD_VERSION)
})

test('run: stdout, stderr, exit code, env, cwd and user', { timeout: 60_000 }, async () => {
  const r = await sbx.commands.run('echo out; echo err >&2')
  assert.equal(r.exitCode, 0)
  assert.equal(r.stdout, 'out\n')
  assert.equal(r.stderr, 'err\n')

  const env = await sbx.commands.run('echo "$FOO|$LELANTOS_E2E_SANDBOX_VAR"', { envs: { FOO: 'bar baz' } })
  assert.equal(env.stdout, 'bar baz|from-sandbox\n')

  const cwd = await sbx.commands.run('pwd', { cwd: '/tmp' })
  assert.equal(cwd.stdout.trim(), '/tmp')
  const home = await sbx.commands.run('pwd; echo "$HOME"; echo "$USER"')
  const [pwd, homeVar, userVar] = home.stdout.trim().split('\n')
  assert.equal(pwd, homeVar, 'the default cwd is the home directory')
  assert.equal(userVar, defaultUser)

  const root = await sbx.commands.run('id -un; echo "$HOME"', { user: 'root' })
  assert.equal(root.stdout, 'root\n/root\n')
  if (!DEV) assert.equal(defaultUser, 'user', 'sandboxes run as "user" by default')

  const owned = await sbx.files.write(`${workDir}/owned-by-default-user`, 'x')
  assert.equal((await sbx.files.getInfo(owned.path)).owner, defaultUser)
})

test('run: a non-zero exit throws CommandExitError', { timeout: 30_000 }, async () => {
  await assert.rejects(sbx.commands.run('echo oops >&2; exit 7'), (err) => {
    assert.ok(err instanceof CommandExitError, `got ${err}`)
    assert.equal(err.exitCode, 7)
    assert.equal(err.stderr, 'oops\n')
    assert.equal(err.error, 'exit status 7')
    return true
  })
})

test('run: a command timeout kills the process', { timeout: 30_000 }, async () => {
  const marker = `sleep 31.${Date.now() % 1000}`
  const started = Date.now()
  await assert.rejects(sbx.commands.run(marker, { timeoutMs: 1500 }), (err) => {
    assert.ok(err instanceof TimeoutError, `got ${err}`)
    return true
  })
  assert.ok(Date.now() - started < 10_000, 'the timeout fired promptly')
  await eventually(async () => {
    const procs = await sbx.commands.list()
    return !procs.some((p) => p.args.join(' ').includes(marker))
  }, 5_000, 'the timed-out process to be gone')
  const ps = await sbx.commands.run(
    `for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < "$f" 2>/dev/null; echo; done | grep -c '^${marker} $' || true`,
    { user: 'root' })
  assert.equal(ps.stdout.trim(), '0', 'no process survives its timeout')
})

test('run: 200,000 lines of streamed output', { timeout: 120_000 }, async () => {
  let chunks = 0
  const r = await sbx.commands.run('seq 1 200000', { onStdout: () => { chunks++ } })
  const lines = r.stdout.trimEnd().split('\n')
  assert.equal(lines.length, 200000)
  assert.equal(lines[0], '1')
  assert.equal(lines[199999], '200000')
  assert.ok(chunks > 1, 'output arrived in several chunks')
})

test('background command: disconnect, reconnect by pid and catch up', { timeout: 60_000 }, async () => {
  const seen = []
  const h = await sbx.commands.run('for i in $(seq 1 8); do echo line$i; sleep 0.25; done', {
    background: true,
    onStdout: (d) => seen.push(d),
  })
  await eventually(() => seen.join('').includes('line1'), 5_000, 'the first line')
  await h.disconnect()
  const before = seen.join('')
  await sleep(1200)
  const procs = await sbx.commands.list()
  assert.ok(procs.some((p) => p.pid === h.pid), 'the process keeps running after the disconnect')

  const h2 = await sbx.commands.connect(h.pid)
  assert.equal(h2.pid, h.pid)
  const r = await h2.wait()
  assert.equal(r.exitCode, 0)
  const all = before + r.stdout
  for (let i = 1; i <= 8; i++) assert.ok(all.includes(`line${i}\n`), `line${i} was delivered once attached: ${JSON.stringify(all)}`)
  assert.ok(r.stdout.includes('line8\n'))
})

test('kill: a running command dies, an unknown pid is not found', { timeout: 30_000 }, async () => {
  const h = await sbx.commands.run('sleep 60', { background: true, timeoutMs: 0 })
  assert.equal(await sbx.commands.kill(h.pid), true)
  await assert.rejects(h.wait(), (err) => {
    assert.ok(err instanceof CommandExitError, `got ${err}`)
    assert.match(err.error, /signal: killed/)
    return true
  })
  await eventually(async () => !(await sbx.commands.list()).some((p) => p.pid === h.pid), 5_000, 'the pid to go')
  assert.equal(await sbx.commands.kill(h.pid), false)
  assert.equal(await sbx.commands.kill(4_000_000), false)
})

test('stdin: send, close, read back', { timeout: 30_000 }, async () => {
  let out = ''
  const h = await sbx.commands.run('cat', { background: true, stdin: true, onStdout: (d) => { out += d } })
  await sbx.commands.sendStdin(h.pid, 'hello stdin\n')
  await eventually(() => out.includes('hello stdin'), 5_000, 'the echoed input')
  await h.sendStdin('second\n')
  await h.closeStdin()
  const r = await h.wait()
  assert.equal(r.exitCode, 0)
  assert.equal(r.stdout, 'hello stdin\nsecond\n')
})

test('pty: create, input, output and resize', { timeout: 30_000 }, async () => {
  const decoder = new TextDecoder()
  let out = ''
  const h = await sbx.pty.create({ cols: 80, rows: 24, onData: (d) => { out += decoder.decode(d, { stream: true }) }, timeoutMs: 25_000 })
  const enc = new TextEncoder()
  await sbx.pty.sendInput(h.pid, enc.encode('stty size; echo pty-$((40+2))\n'))
  await eventually(() => out.includes('pty-42') && out.includes('24 80'), 10_000, 'the first reply')
  await sbx.pty.resize(h.pid, { cols: 100, rows: 30 })
  await sbx.pty.sendInput(h.pid, enc.encode('stty size\n'))
  await eventually(() => out.includes('30 100'), 10_000, 'the new size')
  await sbx.pty.sendInput(h.pid, enc.encode('exit 0\n'))
  const r = await h.wait()
  assert.equal(r.exitCode, 0)
})

test('files: write, read, list to depth 2, exists, rename, remove, makeDir', { timeout: 60_000 }, async () => {
  const dir = `${workDir}/fs`
  assert.equal(await sbx.files.makeDir(dir), true)
  assert.equal(await sbx.files.makeDir(dir), false, 'makeDir of an existing directory')
  const info = await sbx.files.write(`${dir}/a/b/c.txt`, 'hello files')
  assert.equal(info.path, `${dir}/a/b/c.txt`)
  assert.equal(info.name, 'c.txt')
  assert.equal(await sbx.files.read(`${dir}/a/b/c.txt`), 'hello files')
  const bytes = await sbx.files.read(`${dir}/a/b/c.txt`, { format: 'bytes' })
  assert.equal(Buffer.from(bytes).toString(), 'hello files')

  const one = (await sbx.files.list(dir)).map((e) => e.path).sort()
  assert.deepEqual(one, [`${dir}/a`])
  const two = await sbx.files.list(dir, { depth: 2 })
  assert.deepEqual(two.map((e) => e.path).sort(), [`${dir}/a`, `${dir}/a/b`])
  assert.equal(two.find((e) => e.name === 'a').type, 'dir')
  const three = await sbx.files.list(dir, { depth: 3 })
  const file = three.find((e) => e.name === 'c.txt')
  assert.equal(file.type, 'file')
  assert.equal(file.size, 11)
  assert.equal(file.permissions, '-rw-r--r--')
  assert.equal(file.owner, defaultUser)

  assert.equal(await sbx.files.exists(`${dir}/a/b/c.txt`), true)
  assert.equal(await sbx.files.exists(`${dir}/missing`), false)
  const moved = await sbx.files.rename(`${dir}/a/b/c.txt`, `${dir}/moved/c2.txt`)
  assert.equal(moved.path, `${dir}/moved/c2.txt`)
  assert.equal(await sbx.files.exists(`${dir}/a/b/c.txt`), false)
  assert.equal(await sbx.files.read(`${dir}/moved/c2.txt`), 'hello files')
  await sbx.files.remove(`${dir}/a`)
  assert.equal(await sbx.files.exists(`${dir}/a`), false)
  await assert.rejects(sbx.files.read(`${dir}/a/b/c.txt`), (err) => err.name === 'FileNotFoundError' || err.name === 'NotFoundError')
  await assert.rejects(sbx.files.list(`${dir}/nope`), (err) => err.name === 'FileNotFoundError' || err.name === 'NotFoundError')
})

test('files: several files in one write', { timeout: 30_000 }, async () => {
  const dir = `${workDir}/multi`
  const res = await sbx.files.write([
    { path: `${dir}/one.txt`, data: 'one' },
    { path: `${dir}/sub/two.txt`, data: new Blob(['two']) },
    { path: `${dir}/three.bin`, data: new Uint8Array([0, 1, 2, 255]).buffer },
  ])
  assert.equal(res.length, 3)
  assert.deepEqual(res.map((r) => r.path), [`${dir}/one.txt`, `${dir}/sub/two.txt`, `${dir}/three.bin`])
  assert.equal(await sbx.files.read(`${dir}/sub/two.txt`), 'two')
  assert.deepEqual([...(await sbx.files.read(`${dir}/three.bin`, { format: 'bytes' }))], [0, 1, 2, 255])
})

test('files: gzip upload and download', { timeout: 30_000 }, async () => {
  const text = 'compress me '.repeat(10_000)
  const info = await sbx.files.write(`${workDir}/gz/file.txt`, text, { gzip: true })
  assert.equal(info.path, `${workDir}/gz/file.txt`)
  assert.equal(await sbx.files.read(info.path, { gzip: true }), text)
  assert.equal((await sbx.files.getInfo(info.path)).size, text.length)

  // A raw request, as a client without the option would send it.
  const { gzipSync } = await import('node:zlib')
  const url = new URL('/files', sbx.envdApiUrl)
  url.searchParams.set('path', `${workDir}/gz/raw.txt`)
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream', 'Content-Encoding': 'gzip', 'X-Access-Token': sbx.envdAccessToken, ...routeHeaders() },
    body: gzipSync(Buffer.from('raw gzip body')),
  })
  assert.equal(res.status, 200, await res.clone().text())
  assert.equal((await res.json())[0].path, `${workDir}/gz/raw.txt`)
  assert.equal(await sbx.files.read(`${workDir}/gz/raw.txt`), 'raw gzip body')
})

test('files: metadata round-trips as extended attributes', { timeout: 30_000 }, async () => {
  const path = `${workDir}/meta/file.txt`
  const info = await sbx.files.write(path, 'with metadata', { metadata: { author: 'lelantos', purpose: 'e2e-test' } })
  assert.deepEqual(info.metadata, { author: 'lelantos', purpose: 'e2e-test' })
  assert.deepEqual((await sbx.files.getInfo(path)).metadata, { author: 'lelantos', purpose: 'e2e-test' })
  const listed = (await sbx.files.list(`${workDir}/meta`)).find((e) => e.name === 'file.txt')
  assert.deepEqual(listed.metadata, { author: 'lelantos', purpose: 'e2e-test' })
  const plain = await sbx.files.write(`${workDir}/meta/plain.txt`, 'none')
  assert.equal(plain.metadata, undefined)
})

test('files: watchDir reports events with entries, recursively', { timeout: 30_000 }, async () => {
  const dir = `${workDir}/watched`
  await sbx.files.makeDir(dir)
  const events = []
  const handle = await sbx.files.watchDir(dir, (e) => { events.push(e) }, { recursive: true, includeEntry: true, timeoutMs: 25_000 })
  try {
    await sbx.files.write(`${dir}/new.txt`, 'x')
    await sbx.files.makeDir(`${dir}/sub`)
    await eventually(() => events.some((e) => e.name === 'sub' && e.type === 'create'), 5_000, 'the sub directory event')
    await sleep(200)
    await sbx.files.write(`${dir}/sub/deep.txt`, 'y')
    await sbx.files.remove(`${dir}/new.txt`)
    await eventually(() => events.some((e) => e.name === 'sub/deep.txt'), 5_000, 'an event in the subdirectory')
    await eventually(() => events.some((e) => e.name === 'new.txt' && e.type === 'remove'), 5_000, 'the remove event')
    const created = events.find((e) => e.name === 'new.txt' && e.type === 'create')
    assert.ok(created, `create event in ${JSON.stringify(events)}`)
    assert.equal(created.entry?.path, `${dir}/new.txt`)
    assert.equal(created.entry?.type, 'file')
    assert.ok(events.some((e) => e.name === 'new.txt' && e.type === 'write'))
  } finally {
    await handle.stop()
  }
})

test('signed URLs: valid, expired and wrong signatures', { timeout: 30_000 }, async () => {
  assert.ok(sbx.envdAccessToken, 'the sandbox has an access token')
  const path = `${workDir}/signed/file.txt`
  const up = await sbx.uploadUrl(path, { useSignatureExpiration: 120 })
  const form = new FormData()
  form.append('file', new Blob(['signed upload']), path)
  const upRes = await fetch(up, { method: 'POST', body: form, headers: routeHeaders() })
  assert.equal(upRes.status, 200, await upRes.clone().text())
  assert.equal((await upRes.json())[0].path, path)

  const down = await sbx.downloadUrl(path, { useSignatureExpiration: 120 })
  const downRes = await fetch(down, { headers: routeHeaders() })
  assert.equal(downRes.status, 200)
  assert.equal(await downRes.text(), 'signed upload')
  const forever = await sbx.downloadUrl(path)
  assert.equal(await (await fetch(forever, { headers: routeHeaders() })).text(), 'signed upload')

  const expired = await sbx.downloadUrl(path, { useSignatureExpiration: -10 })
  const expRes = await fetch(expired, { headers: routeHeaders() })
  assert.equal(expRes.status, 401)
  assert.deepEqual(await expRes.json(), { code: 401, message: 'signature is already expired' })

  const wrong = new URL(down)
  const sig = wrong.searchParams.get('signature')
  wrong.searchParams.set('signature', sig.slice(0, -1) + (sig.endsWith('A') ? 'B' : 'A'))
  assert.equal((await fetch(wrong, { headers: routeHeaders() })).status, 401)
  const readSigForWrite = new URL(down)
  assert.equal((await fetch(readSigForWrite, { method: 'POST', body: form, headers: routeHeaders() })).status, 401, 'a read signature does not allow writing')
  const unsigned = new URL(down)
  unsigned.searchParams.delete('signature')
  unsigned.searchParams.delete('signature_expiration')
  assert.equal((await fetch(unsigned, { headers: routeHeaders() })).status, 401)
})

test(`files: ${BIG_MB} MiB upload and download stream with bounded daemon memory`, { timeout: 15 * 60_000 }, async () => {
  const size = BIG_MB * 1024 * 1024
  const local = join(localTmp, 'big.bin')
  const want = await writeBigFile(local, size)
  const remote = `${workDir}/big.bin`

  let samples = ''
  const sampler = await sbx.commands.run('while true; do grep VmRSS /proc/$PPID/status; sleep 0.2; done', {
    background: true, user: 'root', timeoutMs: 0, onStdout: (d) => { samples += d },
  })
  try {
    await eventually(() => samples.includes('VmRSS'), 5_000, 'the first memory sample')
    const info = await sbx.files.write(remote, Readable.toWeb(createReadStream(local, { highWaterMark: 1 << 20 })))
    assert.equal(info.path, remote)
    assert.equal((await sbx.files.getInfo(remote)).size, size)
    const inSandbox = await sbx.commands.run(`sha256sum ${remote}`, { timeoutMs: 300_000 })
    assert.equal(inSandbox.stdout.split(' ')[0], want, 'the file the sandbox holds has the uploaded bytes')

    const stream = await sbx.files.read(remote, { format: 'stream' })
    const h = createHash('sha256')
    let got = 0
    for await (const chunk of stream) {
      h.update(chunk)
      got += chunk.length
    }
    assert.equal(got, size)
    assert.equal(h.digest('hex'), want, 'the download has the uploaded bytes')
  } finally {
    await sampler.kill().catch(() => {})
    await sbx.files.remove(remote).catch(() => {})
  }
  const kb = [...samples.matchAll(/VmRSS:\s+(\d+) kB/g)].map((m) => Number(m[1]))
  assert.ok(kb.length >= 3, `enough memory samples: ${kb.length}`)
  const peak = Math.max(...kb)
  console.log(`daemon RSS peak during the ${BIG_MB} MiB transfer: ${(peak / 1024).toFixed(1)} MiB over ${kb.length} samples`)
  assert.ok(peak < RSS_LIMIT_KB, `daemon RSS peaked at ${peak} kB`)
})

/** Writes size pseudo-random bytes to path and returns their sha256 (hex). */
async function writeBigFile(path, size) {
  const block = randomBytes(1 << 20)
  const out = createWriteStream(path)
  const h = createHash('sha256')
  for (let off = 0, i = 0; off < size; off += block.length, i++) {
    block.writeUInt32LE(i, 0)
    const chunk = block.subarray(0, Math.min(block.length, size - off))
    h.update(chunk)
    if (!out.write(Buffer.from(chunk))) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
  return h.digest('hex')
}
