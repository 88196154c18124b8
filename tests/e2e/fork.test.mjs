// Fork, snapshots, pauses that keep only the files, and resumes by traffic,
// through the e2b client as its users call them. Memory is shown by the memory
// probe (lib/sandbox.mjs): a process whose token and count exist only in its
// memory; a new boot by the kernel's boot id.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { call, eventually, killQuietly, sleep } from './lib/api.mjs'
import { startProbe, readProbe, assertProbeContinues } from './lib/sandbox.mjs'

const { Sandbox, SandboxNotFoundError } = await import(process.env.E2B_PACKAGE || 'e2b-2.51.0')
const RUN = randomBytes(4).toString('hex')
const ids = []

after(async () => {
  await killQuietly(...ids)
})

/** Creates a sandbox with the client, killed at the end of the suite. */
async function create(opts = {}) {
  const sbx = await Sandbox.create({ timeoutMs: 300_000, metadata: { suite: 'fork', run: RUN }, ...opts })
  ids.push(sbx.sandboxId)
  return sbx
}

/** Remembers sandboxes made by forks or from snapshots, for the cleanup. */
function track(...sbxs) {
  for (const s of sbxs) if (s?.sandboxId) ids.push(s.sandboxId)
  return sbxs
}

const bootId = async (sbx) => (await sbx.commands.run('cat /proc/sys/kernel/random/boot_id')).stdout.trim()

/** Whether the probe process runs in sbx. */
const probeRuns = async (sbx) =>
  (await sbx.commands.run('pgrep -f "lelantos-probe[.]py" || true')).stdout.trim() !== ''

/** GET / of a port of a sandbox through the sandbox proxy, without the client. */
async function viaProxy(id, port, headers = {}) {
  const res = await fetch(new URL('/', process.env.E2B_SANDBOX_URL), {
    headers: { 'E2b-Sandbox-Id': id, 'E2b-Sandbox-Port': String(port), ...headers }, signal: AbortSignal.timeout(90_000),
  })
  return { status: res.status, text: await res.text() }
}

/** Starts a web server in sbx on port answering "pid <its pid>". */
async function servePid(sbx, port) {
  await sbx.commands.run(`python3 -c "
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = ('pid %d' % os.getpid()).encode()
        self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('0.0.0.0', ${port}), H).serve_forever()"`, { background: true })
  return eventually(async () => {
    const r = await viaProxy(sbx.sandboxId, port).catch(() => null)
    return r?.status === 200 && r.text
  }, 20_000, 'the web server in the sandbox')
}

test('fork: each child goes on with the memory and files of the source, which runs on', { timeout: 240_000 }, async () => {
  const src = await create()
  await src.files.write('/home/user/note.txt', 'before the fork')
  const probe = await startProbe(src)
  await sleep(500)
  const atFork = await readProbe(src)

  const forks = track(...await src.fork({ count: 2 }))
  assert.equal(forks.length, 2)
  const forkedAt = Date.now()
  for (const [i, f] of forks.entries()) {
    assert.ok(f instanceof Sandbox, `fork ${i} is a sandbox: ${f}`)
    assert.notEqual(f.sandboxId, src.sandboxId)
    const now = await assertProbeContinues(f, probe, undefined, `the probe in fork ${i}`)
    assert.ok(now.n >= atFork.n, `fork ${i} starts from the moment of the fork`)
    assert.equal(await f.files.read('/home/user/note.txt'), 'before the fork')
    const info = await f.getInfo()
    assert.equal(info.state, 'running')
    assert.ok(Math.abs(info.endAt.getTime() - (forkedAt + 300_000)) < 30_000, `fork ${i} ends 5 min after the fork: ${info.endAt.toISOString()}`)
    await f.files.write('/home/user/note.txt', `fork ${i}`)
  }
  assert.notEqual(forks[0].sandboxId, forks[1].sandboxId)
  await assertProbeContinues(src, probe, undefined, 'the probe in the source')
  assert.equal(await src.files.read('/home/user/note.txt'), 'before the fork', 'the forks write their own files')
  assert.equal(await forks[1].files.read('/home/user/note.txt'), 'fork 1')
  assert.equal((await src.getInfo()).state, 'running')

  const [timed] = track(...await Sandbox.fork(src.sandboxId, { timeoutMs: 60_000 }))
  assert.ok(timed instanceof Sandbox)
  const end = (await timed.getInfo()).endAt.getTime()
  assert.ok(Math.abs(end - (Date.now() + 60_000)) < 20_000, `timeoutMs is the fork's lifetime: ends ${new Date(end).toISOString()}`)

  await assert.rejects(Sandbox.fork(src.sandboxId, { count: 0 }), /count|400/i, 'count 0 is refused')
  await assert.rejects(Sandbox.fork('nosuchsandbox0000000'), SandboxNotFoundError)
  assert.equal(await timed.pause(), true)
  await assert.rejects(timed.fork(), /paused/, 'a paused sandbox is not forked')
})

test('three sandboxes from one snapshot, which outlives its source; names, listing and deletion', { timeout: 300_000 }, async () => {
  const src = await create()
  await src.files.write('/home/user/state.txt', 'in the snapshot')
  const probe = await startProbe(src)
  const snap = await src.createSnapshot()
  assert.match(snap.snapshotId, /^[a-z0-9]+:default$/)
  assert.deepEqual(snap.names, [])
  await assertProbeContinues(src, probe, undefined, 'the source after its snapshot')
  await src.files.write('/home/user/state.txt', 'after the snapshot')

  const name = `e2e-${RUN}`
  const named = await src.createSnapshot({ name })
  assert.match(named.snapshotId, new RegExp(`^[a-z0-9_-]+/${name}:default$`))
  assert.equal(named.names.length, 1)
  assert.ok(named.snapshotId.startsWith(named.names[0] + ':'))

  const listed = []
  const pages = Sandbox.listSnapshots({ sandboxId: src.sandboxId, limit: 1 })
  while (pages.hasNext) listed.push(...await pages.nextItems())
  assert.deepEqual(listed.map((s) => s.snapshotId), [named.snapshotId, snap.snapshotId], 'newest first, one per page')
  const byName = Sandbox.listSnapshots({ name })
  assert.deepEqual((await byName.nextItems()).map((s) => s.snapshotId), [named.snapshotId])

  assert.equal(await src.kill(), true)
  const children = []
  for (let i = 0; i < 3; i++) {
    const c = await Sandbox.create(snap.snapshotId, { timeoutMs: 120_000, metadata: { suite: 'fork', run: RUN } })
    children.push(...track(c))
    assert.equal(await c.files.read('/home/user/state.txt'), 'in the snapshot')
    await assertProbeContinues(c, probe, undefined, `the probe in sandbox ${i} from the snapshot`)
    await c.files.write('/home/user/state.txt', `child ${i}`)
  }
  assert.equal(new Set(children.map((c) => c.sandboxId)).size, 3)
  assert.equal(await children[0].files.read('/home/user/state.txt'), 'child 0', 'each has its own files')

  const fromNamed = track(await Sandbox.create(named.snapshotId, { timeoutMs: 120_000 }))[0]
  assert.equal(await fromNamed.files.read('/home/user/state.txt'), 'after the snapshot')
  await fromNamed.kill()

  assert.equal(await Sandbox.deleteSnapshot(named.snapshotId), true)
  assert.equal(await Sandbox.deleteSnapshot(named.snapshotId), false, 'a deleted snapshot is not found')
  await assert.rejects(Sandbox.create(named.snapshotId), /not found|400/i)
  for (const c of children) await c.kill()
  assert.equal(await Sandbox.deleteSnapshot(snap.snapshotId), true)
})

test('a pause without memory keeps the files, not the processes; the resume is a new boot', { timeout: 240_000 }, async () => {
  const sbx = await create()
  await sbx.files.write('/home/user/kept.txt', 'kept on disk')
  await startProbe(sbx)
  const boot = await bootId(sbx)

  assert.equal(await sbx.pause({ keepMemory: false }), true)
  assert.equal((await sbx.getInfo()).state, 'paused')
  const back = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 120_000 })
  assert.equal((await back.getInfo()).state, 'running')
  assert.equal(await back.files.read('/home/user/kept.txt'), 'kept on disk')
  assert.equal(await probeRuns(back), false, 'the process did not survive')
  const second = await bootId(back)
  assert.notEqual(second, boot, 'a new boot id')

  // A pause with memory, then a connect asking for a reboot.
  await startProbe(back)
  assert.equal(await back.pause(), true)
  const rebooted = await Sandbox.connect(sbx.sandboxId, { onResume: 'reboot' })
  assert.equal(await rebooted.files.read('/home/user/kept.txt'), 'kept on disk')
  assert.equal(await probeRuns(rebooted), false, 'a reboot drops the processes')
  assert.notEqual(await bootId(rebooted), second)
})

test('onTimeout pause without memory: the end time pauses, the files stay, the next boot is new', { timeout: 120_000 }, async () => {
  const sbx = await create({ timeoutMs: 3_000, lifecycle: { onTimeout: { action: 'pause', keepMemory: false } } })
  await sbx.files.write('/tmp/at-timeout.txt', 'still here')
  const boot = await bootId(sbx)
  await eventually(async () => (await sbx.getInfo()).state === 'paused', 20_000, 'the timeout to pause it', 250)
  const back = await Sandbox.connect(sbx.sandboxId, { timeoutMs: 60_000 })
  assert.equal(await back.files.read('/tmp/at-timeout.txt'), 'still here')
  assert.notEqual(await bootId(back), boot)
})

test('autoResume: a request wakes a paused sandbox and is served; concurrent requests share the resume', { timeout: 180_000 }, async () => {
  const sbx = await create({ lifecycle: { onTimeout: 'pause', autoResume: true } })
  const served = await servePid(sbx, 8000)
  const probe = await startProbe(sbx)
  assert.equal(await sbx.pause(), true)
  assert.equal((await sbx.getInfo()).state, 'paused')

  const answers = await Promise.all(Array.from({ length: 5 }, () => viaProxy(sbx.sandboxId, 8000)))
  for (const a of answers) {
    assert.equal(a.status, 200, `a request to the paused sandbox: ${a.status} ${a.text}`)
    assert.equal(a.text, served, 'the same server process, resumed with its memory')
  }
  assert.equal((await sbx.getInfo()).state, 'running')
  await assertProbeContinues(sbx, probe, undefined, 'the probe after a resume by traffic')
  const logs = (await call('GET', `/sandboxes/${sbx.sandboxId}/logs`)).json.logs.map((l) => l.line)
  assert.equal(logs.filter((l) => l.includes('resumes the sandbox')).length, 1, `one resume for five requests: ${logs.join(' | ')}`)
})

test('without autoResume traffic gets the 502 of a gone sandbox, and nothing resumes', { timeout: 120_000 }, async () => {
  const sbx = await create({ lifecycle: { onTimeout: 'pause' } })
  await servePid(sbx, 8000)
  assert.equal(await sbx.pause(), true)
  const r = await viaProxy(sbx.sandboxId, 8000)
  assert.equal(r.status, 502)
  assert.deepEqual(JSON.parse(r.text), { sandboxId: sbx.sandboxId, message: 'The sandbox was not found', code: 502 })
  assert.equal((await sbx.getInfo()).state, 'paused')
})

test('autoResume of a private sandbox needs its traffic token', { timeout: 120_000 }, async () => {
  const sbx = await create({ lifecycle: { onTimeout: 'pause', autoResume: true }, network: { allowPublicTraffic: false } })
  const token = sbx.trafficAccessToken
  await sbx.commands.run('cd /tmp && python3 -m http.server 8000', { background: true })
  await eventually(async () => (await viaProxy(sbx.sandboxId, 8000, { 'e2b-traffic-access-token': token }).catch(() => null))?.status === 200,
    20_000, 'the web server')
  assert.equal(await sbx.pause(), true)
  const denied = await viaProxy(sbx.sandboxId, 8000)
  assert.equal(denied.status, 403)
  assert.equal(JSON.parse(denied.text).message,
    "This sandbox can't be resumed with the credentials provided. Check your access token and try again.")
  assert.equal((await sbx.getInfo()).state, 'paused')
  assert.equal((await viaProxy(sbx.sandboxId, 8000, { 'e2b-traffic-access-token': token })).status, 200)
  assert.equal((await sbx.getInfo()).state, 'running')
})
