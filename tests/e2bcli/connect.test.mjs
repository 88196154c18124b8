// E2B's CLI on a terminal: `e2b sandbox connect` opens an interactive shell in a
// running sandbox over its pseudo-terminal, and `e2b sandbox create` without
// --detach does the same in a new sandbox that ends soon after the shell. Both are
// driven through a real pseudo-terminal (script(1)): a command is typed, its
// output read, the terminal's size checked, and the shell left with `exit`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { call, createDetached, e2b, eventually, killQuietly, ok, plain, terminal } from './lib.mjs'

const RUN = randomBytes(3).toString('hex')

test('sandbox connect opens a shell on the terminal', async (t) => {
  const id = await createDetached(t)
  ok(await e2b(['sandbox', 'exec', id, `echo from-exec-${RUN} > /tmp/connect.txt`]))
  const term = terminal(['sandbox', 'connect', id], { rows: 33, cols: 101 })
  t.after(() => term.kill())
  await term.waitFor(`Terminal connecting to sandbox ${id}`)
  term.typeLine('echo typed-$((40+2))')
  await term.waitFor('typed-42')
  term.typeLine('cat /tmp/connect.txt; stty size; id -un')
  await term.waitFor(`from-exec-${RUN}`)
  await term.waitFor(/\b33 101\b/)
  await term.waitFor(/^user\s*$/m)
  term.typeLine('exit')
  assert.equal(await term.exit(), 0, term.output())
  assert.match(term.output(), new RegExp(`Closing terminal connection to sandbox ${id}`))
  // Connecting changes nothing about the sandbox: it runs on.
  assert.equal((await call('GET', `/sandboxes/${id}`)).json.state, 'running')

  const unknown = terminal(['sandbox', 'connect', 'nosuch0sandbox'])
  assert.equal(await unknown.exit(), 1, unknown.output())
  assert.match(unknown.output(), /nosuch0sandbox/)
})

test('sandbox create without --detach connects a terminal, and the sandbox ends after it', async (t) => {
  const term = terminal(['sandbox', 'create', 'base'])
  t.after(() => term.kill())
  await term.waitFor(/Terminal connecting to template base with sandbox ID [a-z0-9]+/, 60_000)
  const id = term.output().match(/with sandbox ID ([a-z0-9]+)/)[1]
  t.after(() => killQuietly(id))
  term.typeLine(`echo "in-$(hostname | wc -c)-${RUN}"`)
  await term.waitFor(new RegExp(`in-\\d+-${RUN}`))
  term.typeLine('exit')
  assert.equal(await term.exit(), 0, term.output())
  assert.match(plain(term.output()), new RegExp(`Closing terminal connection to template base with sandbox ID ${id}`))
  // The CLI sets a one-second timeout as it leaves.
  await eventually(async () => (await call('GET', `/sandboxes/${id}`)).status === 404, 30_000, `sandbox ${id} to end after the terminal`, 500)
})
