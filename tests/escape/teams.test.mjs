// Team to team: with a key of another team, every route that names the victim's
// sandbox or template answers exactly as for an id that does not exist, and
// nothing of the victim's changes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { api, sandbox, sh, KEY_B } from './lib.mjs'

test('another team sees none of the victim\'s sandboxes and can change none', { timeout: 180_000 }, async (t) => {
  assert.ok(KEY_B, 'run.sh must give the attacker\'s key in ESCAPE_KEY_B')
  const sbx = await sandbox(t)
  const id = sbx.sandboxId
  const unknown = 'zzzz' + id.slice(4)
  const routes = [
    ['GET', '/sandboxes/ID'], ['DELETE', '/sandboxes/ID'], ['POST', '/sandboxes/ID/timeout', { timeout: 1 }],
    ['POST', '/sandboxes/ID/refreshes', { duration: 10 }], ['POST', '/sandboxes/ID/pause', {}],
    ['POST', '/sandboxes/ID/resume', {}], ['POST', '/sandboxes/ID/connect', { timeout: 60 }],
    ['POST', '/v2/sandboxes/ID/connect', { timeout: 60 }], ['GET', '/sandboxes/ID/logs'], ['GET', '/sandboxes/ID/metrics'],
  ]
  for (const [method, path, body] of routes) {
    const theirs = await api(method, path.replace('ID', id), { key: KEY_B, body })
    const none = await api(method, path.replace('ID', unknown), { key: KEY_B, body })
    assert.equal(theirs.status, 404, `${method} ${path} on another team's sandbox: ${theirs.status} ${theirs.text}`)
    assert.equal(theirs.status, none.status, `${method} ${path}: differs from an unknown id`)
    assert.equal(theirs.text.replaceAll(id, 'ID'), none.text.replaceAll(unknown, 'ID'), `${method} ${path}: the answer tells the id exists`)
    assert.doesNotMatch(theirs.text, new RegExp(sbx.created.envdAccessToken), 'the token leaked')
  }
  for (const path of ['/sandboxes', '/v2/sandboxes?state=running,paused']) {
    const list = await api('GET', path, { key: KEY_B })
    assert.equal(list.status, 200)
    assert.ok(!list.text.includes(id), `${path} lists the victim's sandbox`)
  }
  const detail = await api('GET', `/sandboxes/${id}`)
  assert.equal(detail.status, 200, 'the victim\'s sandbox is untouched')
  assert.equal(detail.body.state, 'running')
  assert.ok(new Date(detail.body.endAt) - Date.now() > 300_000, 'the attacker shortened the victim\'s timeout')
  assert.equal((await sh(sbx, 'echo alive')).stdout.trim(), 'alive')
})

test('another team can neither use nor rebuild nor delete the victim\'s private template', { timeout: 600_000 }, async () => {
  const name = 'escape-private-' + Date.now().toString(36)
  const build = await api('POST', '/templates', { body: { name, dockerfile: 'FROM base\nRUN echo victim > /victim.txt\n' } })
  assert.equal(build.status, 202, `build: ${build.text}`)
  const { templateID, buildID } = build.body
  for (let i = 0; i < 600; i++) {
    const st = await api('GET', `/templates/${templateID}/builds/${buildID}/status`)
    if (st.body?.status === 'ready') break
    assert.notEqual(st.body?.status, 'error', `build failed: ${st.text}`)
    await new Promise((r) => setTimeout(r, 1000))
  }
  const create = await api('POST', '/v2/sandboxes', { key: KEY_B, body: { templateID: name, timeout: 60 } })
  assert.ok(create.status === 400 || create.status === 404, `the attacker created a sandbox from it: ${create.status} ${create.text}`)
  const get = await api('GET', `/templates/${templateID}`, { key: KEY_B })
  assert.equal(get.status, 404, `the attacker read it: ${get.text}`)
  const list = await api('GET', '/templates', { key: KEY_B })
  assert.ok(!list.text.includes(name), 'the attacker lists it')
  const over = await api('POST', '/templates', { key: KEY_B, body: { name, dockerfile: 'FROM base\nRUN echo attacker > /victim.txt\n' } })
  if (over.status === 202) {
    // A template of the attacker's own under the same name is fine: the victim's must not change.
    const mine = await api('POST', '/v2/sandboxes', { body: { templateID: name, timeout: 60 } })
    assert.equal(mine.status, 201)
    const { Sandbox } = await import('e2b')
    const s = new Sandbox({ sandboxId: mine.body.sandboxID, envdAccessToken: mine.body.envdAccessToken, envdVersion: mine.body.envdVersion })
    assert.equal((await s.commands.run('cat /victim.txt')).stdout.trim(), 'victim', 'the attacker rebuilt the victim\'s template')
    await s.kill()
  }
  const del = await api('DELETE', `/templates/${templateID}`, { key: KEY_B })
  assert.equal(del.status, 404, `the attacker deleted it: ${del.status}`)
  assert.equal((await api('GET', `/templates/${templateID}`)).status, 200, 'the victim\'s template is gone')
  await api('DELETE', `/templates/${templateID}`)
})
