// Abuse of shared resources: one sandbox floods its log, forks without end, eats
// memory or floods DNS, or a build fills its disk; a neighbour's command latency,
// measured before and during, stays within twice its quiet value, and the node
// keeps what it stores bounded.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { api, sandbox, sh, latency } from './lib.mjs'

const DATA = process.env.ESCAPE_DATA_DIR

/**
 * Bytes of disk taken under dir on the host: blocks allocated, not lengths, since
 * the console spool's front is punched out long before the file is cut.
 */
function du(dir) {
  let n = 0
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) n += du(p)
    else if (e.isFile()) n += statSync(p).blocks * 512
  }
  return n
}

/** The node's directory of sandbox id: named by its runtime id, found by its record. */
function sandboxDir(id) {
  const root = join(DATA, 'node', 'sandboxes')
  for (const d of readdirSync(root)) {
    try {
      if (readFileSync(join(root, d, 'record.json'), 'utf8').includes(`"${id}"`)) return join(root, d)
    } catch {}
  }
  throw new Error(`no directory under ${root} records sandbox ${id}`)
}

/** Runs attack in attacker (in the background) and checks the neighbour's latency before and during it. */
async function neighbourHolds(neighbour, attacker, attack, what) {
  await latency(neighbour, 5) // warm up
  const quiet = await latency(neighbour)
  await attacker.commands.run(attack, { background: true, user: 'root' })
  await new Promise((r) => setTimeout(r, 3000))
  const loud = await latency(neighbour)
  const bound = Math.max(2 * quiet.median, quiet.median + 20)
  assert.ok(loud.median <= bound, `${what}: the neighbour's median latency went from ${quiet.median.toFixed(1)} ms to ${loud.median.toFixed(1)} ms`)
  return { quiet, loud }
}

test('a log flood is capped on disk and the logs route stays fast', { timeout: 300_000 }, async (t) => {
  const attacker = await sandbox(t)
  const neighbour = await sandbox(t)
  const id = attacker.sandboxId
  // Root inside writes straight into the daemon's console, which becomes the log.
  await neighbourHolds(neighbour, attacker, 'head -c 300M /dev/zero | tr "\\0" "x" | fold -w 200 > /proc/1/fd/1', 'log flood')
  await new Promise((r) => setTimeout(r, 20_000))
  const dir = sandboxDir(id)
  const bytes = du(dir) - (() => { try { return du(join(dir, 'rootfs')) } catch { return 0 } })()
  assert.ok(bytes < 64 << 20, `the flooded sandbox's directory holds ${(bytes / 2 ** 20).toFixed(0)} MiB`)
  const start = performance.now()
  const logs = await api('GET', `/sandboxes/${id}/logs?limit=1000`)
  const took = performance.now() - start
  assert.equal(logs.status, 200)
  assert.ok(took < 2000, `the logs route took ${took.toFixed(0)} ms`)
  // The flood did reach the log (root may write the daemon's console only before the
  // daemon first acts as another user: this is the attacker's first command).
  assert.match(logs.text, /x{100}/, 'the flood never reached the log: the test proves nothing')
})

test('a fork bomb does not starve a neighbour', { timeout: 300_000 }, async (t) => {
  const attacker = await sandbox(t)
  const neighbour = await sandbox(t)
  await neighbourHolds(neighbour, attacker, 'bomb() { bomb | bomb & }; bomb', 'fork bomb')
  assert.equal((await sh(neighbour, 'echo ok')).stdout.trim(), 'ok')
})

test('a memory hog is held to its own memory', { timeout: 300_000 }, async (t) => {
  const attacker = await sandbox(t)
  const neighbour = await sandbox(t)
  await neighbourHolds(neighbour, attacker,
    'python3 -c "x=[]\nwhile True: x.append(bytearray(64<<20))"', 'memory hog')
  const free = Number(execFileSync('awk', ['/MemAvailable/ {print $2}', '/proc/meminfo']).toString()) * 1024
  assert.ok(free > 1 << 30, `the host has ${(free / 2 ** 30).toFixed(1)} GiB available during the hog`)
})

test('a DNS flood does not stop a neighbour\'s lookups', { timeout: 300_000 }, async (t) => {
  const attacker = await sandbox(t)
  const neighbour = await sandbox(t)
  const lookup = async () => {
    const start = performance.now()
    const r = await sh(neighbour, 'getent hosts deb.debian.org >/dev/null || getent hosts localhost >/dev/null; echo $?')
    return { ms: performance.now() - start, ok: r.stdout.trim() === '0' }
  }
  const quiet = await lookup()
  await attacker.commands.run(`python3 -c "
import socket, random, threading
ns = [l.split()[1] for l in open('/etc/resolv.conf') if l.startswith('nameserver')][0]
def blast():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    while True:
        q = random.randbytes(2) + b'\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00' + bytes([12]) + random.randbytes(6).hex().encode() + b'\\x07example\\x03com\\x00\\x00\\x01\\x00\\x01'
        s.sendto(q, (ns, 53))
for _ in range(8): threading.Thread(target=blast, daemon=True).start()
threading.Event().wait()
"`, { background: true, user: 'root' })
  await new Promise((r) => setTimeout(r, 3000))
  const loud = await lookup()
  assert.ok(loud.ok || !quiet.ok, 'the neighbour\'s lookup failed during the flood')
  assert.ok(loud.ms < Math.max(3 * quiet.ms, 1500), `the neighbour's lookup took ${loud.ms.toFixed(0)} ms during the flood, ${quiet.ms.toFixed(0)} ms before`)
})

test('a build that fills its disk fails without filling the host', { timeout: 600_000 }, async (t) => {
  const freeBefore = Number(execFileSync('df', ['-B1', '--output=avail', DATA]).toString().split('\n')[1])
  const name = 'escape-fill-' + Date.now().toString(36)
  const res = await api('POST', '/templates', { body: { name, dockerfile: 'FROM base\nRUN dd if=/dev/zero of=/fill bs=1M count=40000\n' } })
  t.after(() => api('DELETE', `/templates/${name}`).catch(() => {}))
  assert.equal(res.status, 202, res.text)
  let status, minFree = freeBefore
  for (let i = 0; i < 900; i++) {
    const st = await api('GET', `/templates/${res.body.templateID}/builds/${res.body.buildID}/status`)
    status = st.body?.status
    minFree = Math.min(minFree, Number(execFileSync('df', ['-B1', '--output=avail', DATA]).toString().split('\n')[1]))
    if (status === 'ready' || status === 'error') break
    await new Promise((r) => setTimeout(r, 1000))
  }
  assert.equal(status, 'error', 'a RUN that writes 40 GB succeeded')
  const used = (freeBefore - minFree) / 2 ** 30
  assert.ok(used < 12, `the build took ${used.toFixed(1)} GiB of the host's disk`)
})
