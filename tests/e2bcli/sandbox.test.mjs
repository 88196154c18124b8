// E2B's CLI on sandboxes: `e2b sandbox create --detach`, `list` with its state
// and metadata filters, `info`, `exec` (output, exit codes, options, piped
// stdin), `logs` (text and JSON), `metrics`, `pause`, `resume` and `kill` (one,
// several, by filter), each checked by what the CLI prints and its exit code.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { call, createDetached, createSandbox, e2b, eventually, killQuietly, ok, plain, table } from './lib.mjs'

const RUN = randomBytes(3).toString('hex')

/** Creates a sandbox of base with metadata by the API (the CLI's create has no metadata option). */
async function withMetadata(t, metadata) {
  const sb = await createSandbox({ templateID: 'base', timeout: 600, metadata: { suite: 'e2bcli', run: RUN, ...metadata } })
  t.after(() => killQuietly(sb.sandboxID))
  return sb.sandboxID
}

/** The sandbox IDs of `e2b sandbox list` with args, from its table. */
async function listed(...args) {
  const out = ok(await e2b(['sandbox', 'list', ...args]))
  if (plain(out).includes('No sandboxes found')) return []
  return table(out, 'SANDBOX ID').map((row) => row['SANDBOX ID'])
}

test('sandbox create --detach prints the new ID, and info shows the sandbox', async (t) => {
  const id = await createDetached(t, 'base', ['--timeout', '120'])
  const pretty = plain(ok(await e2b(['sandbox', 'info', id])))
  assert.match(pretty, new RegExp(`Sandbox info for ${id}:`), pretty)
  assert.match(pretty, new RegExp(`^Sandbox ID: ${id}$`, 'm'), pretty)
  assert.match(pretty, /^State: running$/m, pretty)
  assert.match(pretty, /^vCPUs: \d+$/m, pretty)
  assert.match(pretty, /^RAM MiB: \d+$/m, pretty)
  assert.match(pretty, /^Envd version: \d+\.\d+\.\d+$/m, pretty)

  const info = JSON.parse(ok(await e2b(['sandbox', 'info', id, '--format', 'json'])))
  const detail = (await call('GET', `/sandboxes/${id}`)).json
  assert.equal(info.sandboxId, id)
  assert.equal(info.templateId, detail.templateID)
  assert.equal(info.state, 'running')
  assert.equal(info.cpuCount, detail.cpuCount)
  assert.equal(info.memoryMB, detail.memoryMB)
  assert.deepEqual(info.metadata, {})
  assert.deepEqual(info.lifecycle, { onTimeout: 'kill', autoResume: false })
  // --timeout 120 set the end: two minutes after the start.
  const span = Date.parse(info.endAt) - Date.parse(info.startedAt)
  assert.ok(span > 110_000 && span <= 125_000, `endAt - startedAt = ${span} ms for --timeout 120`)

  const unknown = await e2b(['sandbox', 'info', 'nosuch0sandbox'])
  ok(unknown, 1)
  assert.match(plain(unknown.stderr), /Sandbox nosuch0sandbox wasn't found/, unknown.stderr)
})

test('sandbox list shows running sandboxes, filtered by state and metadata', async (t) => {
  const a = await withMetadata(t, { role: 'a', shared: 'yes' })
  const b = await withMetadata(t, { role: 'b', shared: 'yes' })
  const paused = await withMetadata(t, { role: 'c', shared: 'yes' })
  ok(await e2b(['sandbox', 'pause', paused]))

  // Running only, by default.
  assert.deepEqual((await listed('-m', `run=${RUN}`)).sort(), [a, b].sort())
  assert.deepEqual(await listed('--metadata', `run=${RUN},role=a`), [a])
  assert.deepEqual(await listed('-s', 'paused', '-m', `run=${RUN}`), [paused])
  assert.deepEqual((await listed('-s', 'running,paused', '-m', `run=${RUN},shared=yes`)).sort(), [a, b, paused].sort())
  assert.deepEqual(await listed('-m', `run=${RUN},role=none`), [])
  assert.match(plain(ok(await e2b(['sandbox', 'list', '-m', `run=${RUN},role=none`]))), /No sandboxes found/)

  // The table's columns.
  const rows = table(ok(await e2b(['sandbox', 'list', '-s', 'running,paused', '-m', `run=${RUN}`])), 'SANDBOX ID')
  const byID = Object.fromEntries(rows.map((r) => [r['SANDBOX ID'], r]))
  assert.equal(byID[a].STATE, 'Running')
  assert.equal(byID[paused].STATE, 'Paused')
  assert.match(byID[a]['VCPUS'], /^\d+$/)
  assert.match(byID[a]['RAM MIB'], /^\d+$/)
  assert.deepEqual(JSON.parse(byID[a].METADATA), { suite: 'e2bcli', run: RUN, role: 'a', shared: 'yes' })

  // JSON, oldest first by default, and the order and limit flags.
  const json = JSON.parse(ok(await e2b(['sandbox', 'list', '-s', 'running,paused', '-m', `run=${RUN}`, '--format', 'json'])))
  assert.deepEqual(json.map((s) => s.sandboxId), [a, b, paused])
  assert.deepEqual(json.map((s) => s.state), ['running', 'running', 'paused'])
  assert.deepEqual(json[1].metadata, { suite: 'e2bcli', run: RUN, role: 'b', shared: 'yes' })
  const desc = JSON.parse(ok(await e2b(['sandbox', 'list', '-s', 'running,paused', '-m', `run=${RUN}`, '--order', 'desc', '--format', 'json'])))
  assert.deepEqual(desc.map((s) => s.sandboxId), [paused, b, a])
  const limited = await e2b(['sandbox', 'list', '-s', 'running,paused', '-m', `run=${RUN}`, '--limit', '2'])
  assert.equal(table(ok(limited), 'SANDBOX ID').length, 2)
  assert.match(plain(limited.stdout), /Showing first 2 sandboxes/)
})

test('sandbox exec runs a command: its output, its exit code, options and piped stdin', async (t) => {
  const id = await createDetached(t)
  let r = await e2b(['sandbox', 'exec', id, '--', 'sh', '-c', 'echo out-$((2+3)); echo err-line >&2; exit 7'])
  ok(r, 7)
  assert.equal(r.stdout, 'out-5\n')
  // The end event's error, as E2B's daemon reports a non-zero exit, follows the command's stderr.
  assert.equal(r.stderr, 'err-line\nexit status 7\n')

  r = await e2b(['sandbox', 'exec', id, 'echo one && echo two'])
  assert.equal(ok(r), 'one\ntwo\n')

  r = await e2b(['sandbox', 'exec', '-u', 'root', '-c', '/tmp', '-e', `MARK=m-${RUN}`, id, '--', 'sh', '-c', 'echo "$(id -un) $(pwd) $MARK"'])
  assert.equal(ok(r), `root /tmp m-${RUN}\n`)
  r = await e2b(['sandbox', 'exec', id, 'id -un'])
  assert.equal(ok(r), 'user\n', 'the default user')

  // Piped stdin reaches the command, and its end closes the command's stdin.
  r = await e2b(['sandbox', 'exec', id, 'wc -l'], { input: 'a\nb\nc\n' })
  assert.equal(ok(r).trim(), '3')
  r = await e2b(['sandbox', 'exec', id, 'cat'], { input: `piped-${RUN}` })
  assert.equal(ok(r), `piped-${RUN}`)

  // In the background: the PID on stderr, and the process runs on.
  r = await e2b(['sandbox', 'exec', '-b', id, '--', 'sh', '-c', `sleep 1; echo bg-${RUN} > /tmp/bg.txt`])
  ok(r)
  assert.match(r.stderr.trim(), /^\d+$/, `the background PID: ${r.stderr}`)
  await eventually(async () => (await e2b(['sandbox', 'exec', id, 'cat /tmp/bg.txt 2>/dev/null'])).stdout === `bg-${RUN}\n`,
    20_000, 'the background command to write its file', 500)

  r = await e2b(['sandbox', 'exec', 'nosuch0sandbox', 'true'])
  ok(r, 1)
  assert.match(r.stderr, /nosuch0sandbox/)
})

test('sandbox logs prints the sandbox log, as text and as JSON', async (t) => {
  const id = await createDetached(t)
  ok(await e2b(['sandbox', 'exec', id, 'true']))
  const pretty = await e2b(['sandbox', 'logs', id])
  const text = plain(ok(pretty))
  assert.equal(pretty.stderr, '', 'nothing on stderr')
  assert.match(text, new RegExp(`Logs for sandbox ${id}:`))
  const lines = text.split('\n').filter((l) => l.startsWith('['))
  assert.ok(lines.length > 0, `log lines:\n${text}`)
  for (const l of lines) {
    assert.match(l, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z\] (DEBUG|INFO|WARN|ERROR) +\{.*\}$/, `a log line: ${l}`)
  }
  assert.match(text, /logger: 'lifecycle'/, text)

  const jsonOut = ok(await e2b(['sandbox', 'logs', id, '--format', 'json']))
  const entries = jsonOut.trim().split('\n').map((l) => JSON.parse(l))
  // The same entries in both formats (the log may have grown in between).
  assert.ok(entries.length >= lines.length, `${entries.length} JSON entries, ${lines.length} lines`)
  lines.forEach((l, i) => assert.ok(l.startsWith(`[${entries[i].timestamp.replace('T', ' ')}]`), `entry ${i}: ${l} and ${JSON.stringify(entries[i])}`))
  for (const e of entries) {
    assert.ok(!Number.isNaN(Date.parse(e.timestamp)), `timestamp: ${JSON.stringify(e)}`)
    // The line's own level: the CLI puts it over the one it formats.
    assert.match(e.level, /^(debug|info|warn|error)$/, `level: ${JSON.stringify(e)}`)
    assert.equal(typeof e.logger, 'string', `logger: ${JSON.stringify(e)}`)
    // The CLI drops the sandbox's own fields from what it prints.
    assert.equal(e.sandboxID, undefined)
    assert.equal(e.teamID, undefined)
  }
  const lifecycle = entries.filter((e) => e.logger === 'lifecycle')
  assert.ok(lifecycle.length > 0, `lifecycle entries: ${jsonOut}`)
  assert.ok(lifecycle.every((e) => typeof (e.msg ?? e.message) === 'string'), `messages: ${jsonOut}`)
  // The console: the daemon's JSON record of its start, taken apart into its level, message and values.
  const started = entries.find((e) => e.logger === 'console' && (e.msg ?? e.message) === 'envd listening')
  assert.ok(started, `the daemon's console record: ${jsonOut}`)
  assert.equal(started.level, 'info')
  assert.match(started.version, /^\d+\.\d+\.\d+$/, JSON.stringify(started))
  assert.match(text, /INFO +\{ .*logger: 'console', message: 'envd listening'.* \}/, text)
  for (let i = 1; i < entries.length; i++) {
    assert.ok(Date.parse(entries[i].timestamp) >= Date.parse(entries[i - 1].timestamp), 'oldest first')
  }

  // --loggers and --level filter what is printed.
  const only = ok(await e2b(['sandbox', 'logs', id, '--format', 'json', '--loggers', 'lifecycle'])).trim().split('\n').map((l) => JSON.parse(l))
  assert.deepEqual(only.map((e) => e.logger), lifecycle.map(() => 'lifecycle'))
  const errors = ok(await e2b(['sandbox', 'logs', id, '--format', 'json', '--level', 'ERROR'])).trim()
  assert.ok(errors.split('\n').filter(Boolean).every((l) => JSON.parse(l).level === 'error'), errors)

  // The API's v1 lines (which the CLI parses) carry the sandbox's fields, and the v2 route has the same entries.
  const v1 = (await call('GET', `/sandboxes/${id}/logs`)).json
  const v2 = (await call('GET', `/v2/sandboxes/${id}/logs?direction=forward`)).json
  const raw = v1.logs.map((l) => JSON.parse(l.line))
  assert.ok(raw.length >= entries.length, `${raw.length} v1 lines`)
  const template = (await call('GET', `/sandboxes/${id}`)).json.templateID
  for (const l of raw) {
    assert.equal(l.sandboxID, id, JSON.stringify(l))
    assert.equal(l.envID, template, JSON.stringify(l))
    assert.equal(typeof l.teamID, 'string', JSON.stringify(l))
    assert.ok(['console', 'lifecycle'].includes(l.logger), JSON.stringify(l))
  }
  assert.deepEqual(v2.logs.slice(0, raw.length).map((e) => [Date.parse(e.timestamp), e.level, e.message, e.fields.logger]),
    v1.logs.map((l, i) => [Date.parse(l.timestamp), raw[i].level, raw[i].message, raw[i].logger]), 'v1 and v2 give the same entries')

  const unknown = await e2b(['sandbox', 'logs', 'nosuch0sandbox'])
  ok(unknown, 1)
  assert.match(unknown.stderr, /404|not found/i, unknown.stderr)
})

test('sandbox metrics prints CPU, memory and disk', async (t) => {
  const id = await createDetached(t)
  const detail = (await call('GET', `/sandboxes/${id}`)).json
  const out = plain(ok(await e2b(['sandbox', 'metrics', id])))
  assert.match(out, new RegExp(`Metrics for sandbox ${id}:`))
  const lines = out.split('\n').filter((l) => l.startsWith('['))
  assert.ok(lines.length > 0, `metric lines:\n${out}`)
  const cores = detail.cpuCount > 1 ? 'Cores' : 'Corefalse' // sic: the CLI's own text for one core
  for (const l of lines) {
    const m = l.match(/^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\]  CPU: +(\d+(?:\.\d+)?)% \/ +(\d+) (\w+) \| Memory: +(\d+) \/ (\d+) +MiB \| Disk: +(\d+) \/ (\d+) +MiB$/)
    assert.ok(m, `a metric line: ${JSON.stringify(l)}`)
    assert.match(m[1], /^\d+(\.\d{1,2})?$/, 'CPU percentage with at most 2 decimals')
    assert.equal(Number(m[2]), detail.cpuCount)
    assert.equal(m[3], cores)
    assert.ok(Number(m[4]) <= Number(m[5]), `memory used <= total: ${l}`)
    assert.ok(Math.abs(Number(m[5]) - detail.memoryMB) <= detail.memoryMB / 10, `memory total ~ memoryMB ${detail.memoryMB}: ${l}`)
    assert.ok(Number(m[7]) > 0 && Number(m[6]) <= Number(m[7]), `disk used <= total: ${l}`)
  }
  const json = ok(await e2b(['sandbox', 'metrics', id, '--format', 'json'])).trim().split('\n').map((l) => JSON.parse(l))
  assert.ok(json.length > 0)
  for (const m of json) {
    assert.ok(!Number.isNaN(Date.parse(m.timestamp)))
    for (const f of ['cpuUsedPct', 'cpuCount', 'memUsed', 'memTotal', 'memCache', 'diskUsed', 'diskTotal']) {
      assert.equal(typeof m[f], 'number', `${f}: ${JSON.stringify(m)}`)
    }
    assert.equal(Math.round(m.cpuUsedPct * 100) / 100, m.cpuUsedPct, `cpuUsedPct rounded to 2 decimals: ${m.cpuUsedPct}`)
  }
  const unknown = await e2b(['sandbox', 'metrics', 'nosuch0sandbox'])
  ok(unknown, 1)
})

test('sandbox pause and resume keep the sandbox and its files', async (t) => {
  const id = await createDetached(t)
  ok(await e2b(['sandbox', 'exec', id, `echo kept-${RUN} > /tmp/kept.txt`]))
  let r = await e2b(['sandbox', 'pause', id])
  assert.match(plain(ok(r)), new RegExp(`Sandbox ${id} has been paused`))
  assert.equal(JSON.parse(ok(await e2b(['sandbox', 'info', id, '--format', 'json']))).state, 'paused')
  r = await e2b(['sandbox', 'pause', id])
  assert.match(plain(ok(r)), new RegExp(`Sandbox ${id} is already paused`))
  assert.ok((await listed('-s', 'paused')).includes(id))
  assert.ok(!(await listed()).includes(id), 'a paused sandbox is not listed as running')

  r = await e2b(['sandbox', 'resume', id])
  assert.match(plain(ok(r)), new RegExp(`Sandbox ${id} has been resumed`))
  assert.equal(JSON.parse(ok(await e2b(['sandbox', 'info', id, '--format', 'json']))).state, 'running')
  assert.equal(ok(await e2b(['sandbox', 'exec', id, 'cat /tmp/kept.txt'])), `kept-${RUN}\n`)
  // Resuming a running sandbox is no error: it is connected to.
  assert.match(plain(ok(await e2b(['sandbox', 'resume', id]))), /has been resumed/)

  for (const cmd of ['pause', 'resume']) {
    r = await e2b(['sandbox', cmd, 'nosuch0sandbox'])
    ok(r, 1)
    assert.match(plain(r.stderr), /Sandbox nosuch0sandbox wasn't found/, `${cmd}: ${r.stderr}`)
  }
})

test('sandbox kill ends one sandbox, several, or all that a filter selects', async (t) => {
  const one = await createDetached(t)
  let r = await e2b(['sandbox', 'kill', one])
  assert.match(plain(ok(r)), new RegExp(`Sandbox ${one} has been killed`))
  ok(await e2b(['sandbox', 'info', one]), 1)

  const [a, b] = await Promise.all([createDetached(t), createDetached(t)])
  r = await e2b(['sandbox', 'kill', a, b])
  const out = plain(ok(r))
  assert.match(out, new RegExp(`Sandbox ${a} has been killed`))
  assert.match(out, new RegExp(`Sandbox ${b} has been killed`))
  for (const id of [a, b]) assert.equal((await call('GET', `/sandboxes/${id}`)).status, 404)

  r = await e2b(['sandbox', 'kill', a])
  ok(r) // the CLI reports an unknown sandbox without failing
  assert.match(plain(r.stderr), new RegExp(`Sandbox ${a} wasn't found`))
  r = await e2b(['sandbox', 'kill'])
  ok(r, 1)
  assert.match(plain(r.stderr), /You need to specify \[sandboxIDs\.\.\.\] or use -a\/--all flag/)

  // --all with a filter: the selected sandboxes and no other.
  const tag = `kill-${RUN}`
  const [x, y] = await Promise.all([withMetadata(t, { group: tag }), withMetadata(t, { group: tag })])
  const other = await withMetadata(t, { group: `other-${RUN}` })
  r = await e2b(['sandbox', 'kill', '--all', '-m', `group=${tag}`])
  assert.match(plain(ok(r)), /Killed 2 running sandboxes/)
  for (const id of [x, y]) assert.equal((await call('GET', `/sandboxes/${id}`)).status, 404)
  assert.equal((await call('GET', `/sandboxes/${other}`)).status, 200, 'a sandbox the filter did not select runs on')
  r = await e2b(['sandbox', 'kill', '--all', '-m', `group=${tag}`])
  assert.match(plain(ok(r)), /No running sandboxes/)
})
