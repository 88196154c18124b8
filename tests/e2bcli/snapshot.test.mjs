// E2B's CLI on snapshots: `e2b sandbox snapshot create` (unnamed and named),
// `snapshot list` (all, of one sandbox, by name, as JSON), a sandbox created from
// a snapshot with `e2b sandbox create <snapshot ID>`, and `snapshot delete`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { call, createDetached, e2b, ok, plain, table } from './lib.mjs'

const RUN = randomBytes(3).toString('hex')

/** The snapshot IDs of `e2b sandbox snapshot list` with args, from its table. */
async function listed(...args) {
  const out = ok(await e2b(['sandbox', 'snapshot', 'list', ...args]))
  if (plain(out).includes('No snapshots found')) return []
  return table(out, 'SNAPSHOT ID').map((row) => row['SNAPSHOT ID'])
}

test('sandbox snapshot create, list, use and delete', async (t) => {
  const src = await createDetached(t)
  ok(await e2b(['sandbox', 'exec', src, `echo snap-${RUN} > /home/user/state.txt`]))

  let r = await e2b(['sandbox', 'snapshot', 'create', src])
  const unnamed = plain(ok(r)).match(/^Created snapshot (\S+) from sandbox (\S+)$/m)
  assert.ok(unnamed, r.stdout)
  assert.equal(unnamed[2], src)
  const snap = unnamed[1]
  t.after(() => call('DELETE', `/templates/${encodeURIComponent(snap)}`).catch(() => {}))
  assert.match(snap, /^[a-z0-9]+:default$/, 'an unnamed snapshot is <template ID>:default')

  const name = `e2bcli-snap-${RUN}`
  r = await e2b(['sandbox', 'snapshot', 'create', src, '--name', name])
  const named = plain(ok(r)).match(/^Created snapshot (\S+) from sandbox /m)
  assert.ok(named, r.stdout)
  const namedID = named[1]
  t.after(() => call('DELETE', `/templates/${encodeURIComponent(namedID)}`).catch(() => {}))
  assert.match(namedID, new RegExp(`^[a-z0-9-_]+/${name}:default$`), 'a named snapshot is <team>/<name>:default')
  // The source runs on.
  assert.equal(JSON.parse(ok(await e2b(['sandbox', 'info', src, '--format', 'json']))).state, 'running')

  // Lists: the table, newest first; of one sandbox; by name; as JSON.
  const all = await listed()
  assert.ok(all.includes(snap) && all.includes(namedID), `both in ${all}`)
  assert.ok(all.indexOf(namedID) < all.indexOf(snap), 'newest first')
  const rows = table(ok(await e2b(['sandbox', 'snapshot', 'list', src])), 'SNAPSHOT ID')
  assert.deepEqual(rows.map((x) => x['SNAPSHOT ID']), [namedID, snap])
  assert.equal(rows[0].NAMES, namedID.replace(/:default$/, ''))
  assert.equal(rows[1].NAMES, '')
  assert.deepEqual(await listed('--name', name), [namedID])
  assert.deepEqual(await listed('--name', `${name}:default`), [namedID])
  assert.deepEqual(await listed('--name', `no-such-${RUN}`), [])
  const json = JSON.parse(ok(await e2b(['sandbox', 'snapshot', 'list', src, '--format', 'json'])))
  assert.deepEqual(json, [
    { snapshotId: namedID, names: [namedID.replace(/:default$/, '')] },
    { snapshotId: snap, names: [] },
  ])
  r = await e2b(['sandbox', 'snapshot', 'list', src, '--limit', '1'])
  assert.equal(table(ok(r), 'SNAPSHOT ID').length, 1)
  assert.match(plain(r.stdout), /Showing first 1 snapshots/)

  // A sandbox from each snapshot has the source's files, after the source is gone.
  ok(await e2b(['sandbox', 'kill', src]))
  const forks = []
  for (const id of [snap, namedID]) {
    const fork = await createDetached(t, id)
    forks.push(fork)
    assert.notEqual(fork, src)
    assert.equal(ok(await e2b(['sandbox', 'exec', fork, 'cat /home/user/state.txt'])), `snap-${RUN}\n`, `from ${id}`)
  }
  ok(await e2b(['sandbox', 'kill', ...forks]))

  // Delete: both at once, then one that is gone.
  r = await e2b(['sandbox', 'snapshot', 'delete', snap, namedID])
  const out = plain(ok(r))
  assert.match(out, new RegExp(`Snapshot ${snap} has been deleted`))
  assert.match(out, new RegExp(`Snapshot ${namedID} has been deleted`))
  const left = await listed()
  assert.ok(!left.includes(snap) && !left.includes(namedID), `deleted: ${left}`)
  r = await e2b(['sandbox', 'snapshot', 'delete', snap])
  ok(r)
  assert.match(plain(r.stderr), new RegExp(`Snapshot ${snap} wasn't found`))

  r = await e2b(['sandbox', 'snapshot', 'create', 'nosuch0sandbox'])
  ok(r, 1)
  assert.match(plain(r.stderr), /Sandbox nosuch0sandbox wasn't found/, r.stderr)
})
