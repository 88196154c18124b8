// End-to-end tests, with the official npm `e2b` client, of behaviours in which
// the client expects what E2B's daemon and API do: file metadata in the
// user.e2b. namespace, an overwrite without metadata clearing it, removing a
// missing path, parents made for a write (and refused where the user may not
// write), a kill during `commands.run` ending the stream at once, metrics of
// several sandboxes, and logs in E2B's shapes (v1 lines as JSON objects, v2).
// tests/e2e/run.sh starts the server and sets the client's environment.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { call, eventually, sleep } from './lib/api.mjs'

const { Sandbox, TimeoutError } = await import(process.env.E2B_PACKAGE || 'e2b-2.51.0')
const TEMPLATE = 'base'

let sbx
let dir

/** Runs a shell command as root and returns its trimmed stdout; a failure names its stderr. */
async function root(cmd) {
  const r = await sbx.commands.run(cmd, { user: 'root' }).catch((err) => {
    throw new Error(`${cmd}: ${err.message}: ${err.result?.stderr ?? err.stderr ?? ''}`)
  })
  return r.stdout.trim()
}

/** The extended attributes of path in the sandbox, "name=value" sorted, space separated. */
async function xattrs(path) {
  return root(`python3 -c 'import os,sys; print(" ".join(sorted(n+"="+os.getxattr(sys.argv[1],n).decode() for n in os.listxattr(sys.argv[1]))))' ${path}`)
}

before(async () => {
  sbx = await Sandbox.create(TEMPLATE, { timeoutMs: 10 * 60_000 })
  dir = `/home/user/behaviours-${randomBytes(4).toString('hex')}`
  await sbx.commands.run(`mkdir -p ${dir}`, { user: 'user' })
}, { timeout: 120_000 })

after(async () => {
  await sbx?.kill().catch(() => {})
})

test('metadata lives in user.e2b.* and comes back without the prefix', { timeout: 60_000 }, async () => {
  const path = `${dir}/meta.txt`
  const info = await sbx.files.write(path, 'one', { metadata: { author: 'lelantos', purpose: 'e2e' }, user: 'user' })
  assert.deepEqual(info.metadata, { author: 'lelantos', purpose: 'e2e' })
  assert.deepEqual((await sbx.files.getInfo(path)).metadata, { author: 'lelantos', purpose: 'e2e' })
  assert.equal(await xattrs(path), 'user.e2b.author=lelantos user.e2b.purpose=e2e')
  // Another tool's attribute is neither reported nor removed.
  await root(`python3 -c 'import os; os.setxattr("${path}", "user.other", b"theirs")'`)
  assert.deepEqual((await sbx.files.getInfo(path)).metadata, { author: 'lelantos', purpose: 'e2e' })

  const over = await sbx.files.write(path, 'two', { user: 'user' })
  assert.equal(over.metadata, undefined, 'the overwrite reports no metadata')
  assert.equal((await sbx.files.getInfo(path)).metadata, undefined, 'an overwrite without metadata clears it')
  assert.equal(await xattrs(path), 'user.other=theirs')
  assert.equal(await sbx.files.read(path), 'two')
})

test('removing a missing path succeeds', { timeout: 30_000 }, async () => {
  await sbx.files.remove(`${dir}/never-was`)
  await sbx.files.remove(`${dir}/no/such/dir/either`)
  assert.equal(await sbx.files.exists(`${dir}/never-was`), false)
})

test('a write makes missing parents owned by the user, but not where the user may not write', { timeout: 60_000 }, async () => {
  await sbx.files.write(`${dir}/a/b/c.txt`, 'deep', { user: 'user' })
  assert.equal(await root(`stat -c %U:%G ${dir}/a ${dir}/a/b ${dir}/a/b/c.txt | sort -u`), 'user:user')

  // E2B's root daemon would make /etc/sudoers.d for user; Lelantos refuses.
  await root('rm -rf /etc/sudoers.d')
  await assert.rejects(sbx.files.write('/etc/sudoers.d/user', 'user ALL=(ALL) NOPASSWD: ALL', { user: 'user' }),
    (err) => /403|permission/i.test(err.message), 'user plants /etc/sudoers.d/user')
  assert.equal(await root('test -e /etc/sudoers.d && echo present || echo absent'), 'absent')
  await sbx.files.write('/etc/sudoers.d/made-by-root', '# root may', { user: 'root' })
  assert.equal(await root('stat -c %U /etc/sudoers.d'), 'root')
})

test('a kill during commands.run ends the stream at once; the sandbox is reported gone', { timeout: 120_000 }, async () => {
  const victim = await Sandbox.create(TEMPLATE, { timeoutMs: 120_000 })
  const outcome = victim.commands.run('echo started; sleep 100', { timeoutMs: 110_000 }).then(
    (r) => ({ result: r }), (err) => ({ err, at: Date.now() }))
  await sleep(1500)
  const killedAt = Date.now()
  assert.equal(await Sandbox.kill(victim.sandboxId), true)
  const got = await Promise.race([outcome, sleep(20_000).then(() => ({ hung: true }))])
  assert.ok(!got.hung, 'the command stream still runs 20 s after the kill')
  assert.ok(got.err, `the command finished: ${JSON.stringify(got.result)}`)
  assert.ok(got.at - killedAt < 15_000, `the stream ended ${got.at - killedAt} ms after the kill began`)
  assert.ok(got.err instanceof TimeoutError, `want the client's TimeoutError, got ${got.err.name}: ${got.err.message}`)
  assert.match(got.err.message, /killed or reached its end of life/)
  assert.equal(await victim.isRunning(), false)
  const health = await fetch(`${victim.envdApiUrl}/health`, { headers: { 'E2b-Sandbox-Id': victim.sandboxId, 'E2b-Sandbox-Port': '49983' } })
  assert.equal(health.status, 502, 'envd /health through the proxy')
})

test('metrics of several sandboxes: per sandbox and in one call', { timeout: 120_000 }, async () => {
  const other = await Sandbox.create(TEMPLATE, { timeoutMs: 120_000 })
  try {
    const ids = [sbx.sandboxId, other.sandboxId]
    for (const id of ids) {
      const ms = await eventually(async () => { const m = await Sandbox.getMetrics(id); return m.length ? m : null }, 30_000, `metrics of ${id}`)
      const info = await Sandbox.getInfo(id)
      for (const m of ms) {
        assert.ok(m.timestamp instanceof Date && !Number.isNaN(m.timestamp.getTime()))
        assert.equal(m.cpuCount, info.cpuCount)
        assert.equal(Math.round(m.cpuUsedPct * 100) / 100, m.cpuUsedPct, `cpuUsedPct ${m.cpuUsedPct} has at most 2 decimals`)
        assert.equal(m.memTotal, info.memoryMB * 1024 * 1024, 'memTotal in bytes')
        assert.ok(m.memUsed > 0 && m.memUsed <= m.memTotal && m.diskTotal > 0 && m.diskUsed <= m.diskTotal)
      }
    }
    const res = await call('GET', `/sandboxes/metrics?sandbox_ids=${ids.join(',')},nosuchsandbox0000000`)
    assert.equal(res.status, 200, res.text)
    assert.deepEqual(Object.keys(res.json.sandboxes).sort(), [...ids].sort(), 'the unknown ID is left out')
    for (const id of ids) {
      const m = res.json.sandboxes[id]
      for (const f of ['timestamp', 'timestampUnix', 'cpuCount', 'cpuUsedPct', 'memUsed', 'memTotal', 'memCache', 'diskUsed', 'diskTotal']) {
        assert.ok(f in m, `${id}: ${f}`)
      }
      assert.equal(Math.round(m.cpuUsedPct * 100) / 100, m.cpuUsedPct)
    }
    assert.equal((await call('GET', '/sandboxes/metrics')).status, 400)
  } finally {
    await other.kill().catch(() => {})
  }
})

test('logs: v1 lines are JSON objects, plain console output is wrapped, v2 agrees', { timeout: 120_000 }, async (t) => {
  const own = await Sandbox.create(TEMPLATE, { timeoutMs: 120_000 })
  t.after(() => own.kill().catch(() => {}))
  const id = own.sandboxId
  const tag = randomBytes(4).toString('hex')
  // The console is the daemon's output, which root may write to until the
  // daemon first acts as another user (it is then no longer dumpable, and its
  // /proc/1/fd is closed to root too): so first thing in a fresh sandbox.
  await own.commands.run(`echo 'plain text ${tag}' > /proc/1/fd/2 && echo '{"level":"warn","msg":"structured ${tag}","disk":"low"}' > /proc/1/fd/2`, { user: 'root' })
  const v1 = await eventually(async () => {
    const r = await call('GET', `/sandboxes/${id}/logs`)
    return r.json?.logEntries?.some((e) => e.message === `structured ${tag}`) ? r.json : null
  }, 30_000, 'the console lines in the log')
  assert.equal(v1.logs.length, v1.logEntries.length)
  v1.logs.forEach((l, i) => {
    const obj = JSON.parse(l.line) // what E2B's CLI does with every line
    const e = v1.logEntries[i]
    assert.equal(typeof obj.level, 'string')
    assert.equal(obj.level, e.level)
    assert.equal(obj.message, e.message)
    assert.equal(l.timestamp, e.timestamp)
    assert.equal(obj.sandboxID, id)
    assert.ok(['console', 'lifecycle'].includes(obj.logger), `logger ${obj.logger}`)
  })
  const by = (msg) => v1.logEntries.find((e) => e.message === msg)
  assert.equal(by(`plain text ${tag}`)?.level, 'info')
  assert.equal(by(`plain text ${tag}`)?.fields.logger, 'console')
  const structured = by(`structured ${tag}`)
  assert.equal(structured.level, 'warn')
  assert.equal(structured.fields.disk, 'low')
  assert.ok(v1.logEntries.some((e) => e.fields.logger === 'lifecycle' && /sandbox created/.test(e.message)), 'a lifecycle event')
  const listening = v1.logEntries.find((e) => e.message === 'envd listening')
  assert.ok(listening && listening.fields.logger === 'console' && listening.fields.version, 'the daemon\'s own structured line')

  // v2: newest first by default, the same entries.
  const v2 = (await call('GET', `/v2/sandboxes/${id}/logs`)).json.logs
  const key = (e) => `${e.timestamp} ${e.level} ${e.message} ${JSON.stringify(e.fields)}`
  const newest = v2.map(key)
  // Up to v1's last entry (lines may have come since), v2 is v1 reversed.
  const until = Date.parse(v1.logEntries.at(-1).timestamp)
  assert.deepEqual(v2.filter((e) => Date.parse(e.timestamp) <= until).map(key), v1.logEntries.map(key).reverse())
  assert.deepEqual(v2.filter((e) => e.message.endsWith(tag)).map((e) => e.message), [`structured ${tag}`, `plain text ${tag}`])
  const warn = (await call('GET', `/v2/sandboxes/${id}/logs?level=warn&direction=forward`)).json.logs
  assert.ok(warn.length >= 1 && warn.every((e) => e.level === 'warn' || e.level === 'error'), JSON.stringify(warn))
  const found = (await call('GET', `/v2/sandboxes/${id}/logs?search=${encodeURIComponent(`text ${tag}`)}`)).json.logs
  assert.deepEqual(found.map((e) => e.message), [`plain text ${tag}`])
  const last = (await call('GET', `/v2/sandboxes/${id}/logs?limit=1`)).json.logs
  assert.equal(last.length, 1)
  assert.equal(key(last[0]), newest[0])
})
