// E2B's CLI on templates: `e2b template create <name> --dockerfile <file>` builds
// a Dockerfile through the SDK's build API (the CLI parses the Dockerfile into
// steps, uploads the COPY sources, starts the build and follows its status), a
// sandbox runs from the new template, `e2b template list` shows it with its name,
// `e2b template delete` removes it; and a failing step fails the command. The
// Dockerfiles start from a small image pushed to the suite's registry (run.sh
// runs it on E2BCLI_REGISTRY), since the host reaches no public registry.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { call, createDetached, e2b, eventually, killQuietly, ok, plain, table } from './lib.mjs'
import { pushBashImage } from './image.mjs'

const RUN = randomBytes(3).toString('hex')
const NAME = `e2bcli-tpl-${RUN}`

let image
test.before(async () => {
  image = await pushBashImage(process.env.E2BCLI_REGISTRY, process.env.LELANTOS_BASE_ROOTFS)
})

/** A build context with these files; removed when t ends. */
function context(t, files) {
  const dir = mkdtempSync(join(tmpdir(), 'lelantos-e2bcli-ctx-'))
  for (const [name, body] of Object.entries(files)) writeFileSync(join(dir, name), body)
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The rows of `e2b template list`. */
async function templates() {
  const out = ok(await e2b(['template', 'list']))
  if (plain(out).includes('No templates found.')) return []
  return table(out, 'ACCESS')
}

test('template create builds a Dockerfile that sandboxes run; template list shows it; template delete removes it', async (t) => {
  t.after(() => call('DELETE', `/templates/${NAME}`).catch(() => {}))
  const dir = context(t, {
    'app.txt': `copied-${RUN}\n`,
    // The start command runs on in the template's snapshot: it answers
    // /tmp/ping in /tmp/pong (the image has no rm: the file is emptied).
    'start.sh': `echo "started-$GREETING" > /tmp/started.txt
while :; do
  if [ -s /tmp/ping ]; then cat /tmp/ping > /tmp/pong; : > /tmp/ping; echo "answered $(cat /tmp/pong)"; fi
  sleep 0.2
done
`,
    'cli.Dockerfile': `FROM ${image}
ENV GREETING=hello-${RUN}
RUN echo "built-$GREETING" > /built.txt
COPY app.txt /opt/app/app.txt
COPY start.sh /opt/app/start.sh
`,
  })
  const r = await e2b(['template', 'create', NAME, '--dockerfile', 'cli.Dockerfile', '--cpu-count', '1', '--memory-mb', '256',
    '--cmd', 'bash /opt/app/start.sh', '--ready-cmd', '[ -f /tmp/started.txt ]'],
  { cwd: dir, timeoutMs: 600_000 })
  const out = plain(ok(r))
  assert.match(out, /Found \.\/cli\.Dockerfile that will be used to build the sandbox template\./, out)
  assert.match(out, /Building sandbox template\.\.\./)
  assert.match(out, new RegExp(`Building sandbox template ${NAME} finished\\.`), out)

  // The list: the template by its name, private, of its size.
  const row = (await templates()).find((x) => x['TEMPLATE NAME'].split(', ').includes(NAME))
  assert.ok(row, `${NAME} in the template list`)
  assert.equal(row.ACCESS, 'Private')
  assert.match(row['TEMPLATE ID'], /^[a-z0-9-_]+$/)
  assert.equal(row.VCPUS, '1')
  assert.equal(row['RAM MIB'], '256')
  assert.match(row['ENVD VERSION'], /^\d+\.\d+\.\d+$/)
  assert.match(row['DISK SIZE MIB'], /^\d+$/)
  assert.ok(!Number.isNaN(Date.parse(row['CREATED AT'])), `created at: ${row['CREATED AT']}`)
  const json = JSON.parse(ok(await e2b(['template', 'list', '--format', 'json'])))
  const entry = json.find((x) => x.templateID === row['TEMPLATE ID'])
  assert.ok(entry.aliases.includes(NAME), `aliases: ${JSON.stringify(entry)}`)
  assert.equal(entry.public, false)
  assert.equal(entry.cpuCount, 1)
  assert.equal(entry.memoryMB, 256)

  // A sandbox of the template: the steps' results, its start command, and
  // the user and directory the CLI's Dockerfile parsing ends with.
  const id = await createDetached(t, NAME)
  const got = ok(await e2b(['sandbox', 'exec', id, 'cat /built.txt /opt/app/app.txt /tmp/started.txt; id -un; pwd']))
  assert.equal(got, `built-hello-${RUN}\ncopied-${RUN}\nstarted-hello-${RUN}\nuser\n/home/user\n`)
  const listed = JSON.parse(ok(await e2b(['sandbox', 'list', '-t', NAME, '--format', 'json'])))
  assert.deepEqual(listed.map((s) => s.sandboxId), [id])
  // The start command runs on in the sandbox.
  ok(await e2b(['sandbox', 'exec', id, `echo ping-${RUN} > /tmp/ping`]))
  await eventually(async () => (await e2b(['sandbox', 'exec', id, 'cat /tmp/pong 2>/dev/null'])).stdout === `ping-${RUN}\n`,
    20_000, 'the start command to answer', 500)
  // What the start command prints is the sandbox's console: its log has it.
  await eventually(async () => {
    const lines = ok(await e2b(['sandbox', 'logs', id, '--format', 'json'])).trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))
    return lines.some((l) => JSON.stringify(l).includes(`answered ping-${RUN}`))
  }, 20_000, "the start command's output in the sandbox's log", 500)
  await killQuietly(id)

  const del = await e2b(['template', 'delete', NAME, '--yes'])
  const delOut = plain(ok(del))
  assert.match(delOut, /Sandbox templates to delete/)
  assert.match(delOut, new RegExp(`- Deleting sandbox template ${NAME}`))
  assert.ok(!(await templates()).some((x) => x['TEMPLATE NAME'].split(', ').includes(NAME)), `${NAME} is gone from the list`)
  const gone = await e2b(['sandbox', 'create', NAME, '--detach'])
  ok(gone, 1)
  assert.match(gone.stderr, new RegExp(NAME), gone.stderr)
  const again = await e2b(['template', 'delete', NAME, '--yes'])
  ok(again, 1)
  assert.match(plain(again.stderr), /Error deleting sandbox template: \[404\]/, again.stderr)
})

test('template create fails, exit 1, when a step fails', async (t) => {
  const name = `e2bcli-bad-${RUN}`
  t.after(() => call('DELETE', `/templates/${name}`).catch(() => {}))
  const dir = context(t, { 'Dockerfile': `FROM ${image}\nRUN echo before-the-failure\nRUN echo failing-${RUN} >&2; exit 3\n` })
  const r = await e2b(['template', 'create', name], { cwd: dir, timeoutMs: 600_000 })
  ok(r, 1)
  const err = plain(r.stderr)
  assert.match(err, /Template build failed\./, err)
  assert.match(err, /Error: .*\S/, err)
  assert.match(plain(r.stdout), /Found \.\/Dockerfile/, r.stdout)
})

test('template list gives every template its access and a name', async () => {
  const rows = await templates()
  for (const row of rows) {
    assert.ok(['Public', 'Private'].includes(row.ACCESS), JSON.stringify(row))
    assert.notEqual(row['TEMPLATE NAME'], '', `every template has a name: ${JSON.stringify(row)}`)
  }
})
