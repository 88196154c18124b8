// Build to host: a Dockerfile's RUN steps, its build context and the archives it
// adds are the attacker's; nothing of the host may be read into a build's status,
// logs or tree, and nothing may be written outside the build.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { api, Sandbox } from './lib.mjs'
import { tar, TYPE } from './tar.mjs'

const marker = randomBytes(12).toString('hex')
const secret = `/root/lelantos-build-secret-${marker}`
const outside = `/tmp/lelantos-build-escape-${marker}`

before(() => writeFileSync(secret, `host-secret-${marker}\n`, { mode: 0o600 }))
after(() => { rmSync(secret, { force: true }); rmSync(outside, { force: true }) })

/** Builds a template and waits for it; returns {status, text} of the final build status (logs included). */
async function build(t, dockerfile, context) {
  const name = 'escape-' + randomBytes(4).toString('hex')
  const body = { name, dockerfile }
  if (context) body.context = context.toString('base64')
  const res = await api('POST', '/templates', { body })
  t.after(() => api('DELETE', `/templates/${name}`).catch(() => {}))
  if (res.status !== 202) return { status: 'refused', text: res.text, name }
  const { templateID, buildID } = res.body
  for (let i = 0; i < 900; i++) {
    const st = await api('GET', `/templates/${templateID}/builds/${buildID}/status`)
    if (st.body?.status === 'ready' || st.body?.status === 'error') {
      const logs = await api('GET', `/templates/${templateID}/builds/${buildID}/logs`)
      return { status: st.body.status, text: st.text + logs.text, name }
    }
    await new Promise((r) => setTimeout(r, 1000))
  }
  throw new Error('build did not finish')
}

/** Runs cmd in a sandbox of template name and returns its stdout. */
async function inTemplate(name, cmd) {
  const res = await api('POST', '/v2/sandboxes', { body: { templateID: name, timeout: 120 } })
  assert.equal(res.status, 201, res.text)
  const s = new Sandbox({ sandboxId: res.body.sandboxID, envdAccessToken: res.body.envdAccessToken, envdVersion: res.body.envdVersion })
  try {
    return (await s.commands.run(cmd, { user: 'root' }).catch((e) => e)).stdout ?? ''
  } finally {
    await s.kill()
  }
}

const noLeak = (text, what) => assert.doesNotMatch(text, new RegExp(`host-secret-${marker}`), `${what}: the host secret leaked`)

test('a RUN step cannot make the builder read a host file (exit status file swapped for a link)', { timeout: 600_000 }, async (t) => {
  const r = await build(t, `FROM base
RUN f=$(tr '\\0' '\\n' </proc/1/cmdline | grep -o '/\\.lelantos-exit-[0-9a-f]*' | head -1); ln -sf ${secret} "$f"
`)
  noLeak(r.text, 'build status and logs')
  if (r.status === 'ready') noLeak(await inTemplate(r.name, 'cat /.lelantos-exit-* 2>/dev/null; true'), 'the built tree')
})

test('a hostile build context reaches nothing outside the build', { timeout: 600_000 }, async (t) => {
  const ctx = tar([
    { name: 'Dockerfile', body: 'FROM base\n' },
    { name: 'ok.txt', body: 'fine\n' },
    { name: `../../../../../..${outside}`, body: 'escaped-dotdot\n' },
    { name: outside, body: 'escaped-absolute\n' },
    { name: 'hostroot', type: TYPE.symlink, linkname: '/root' },
    { name: 'hostroot/planted', body: 'through-a-link\n' },
    { name: 'hard', type: TYPE.hardlink, linkname: secret },
    { name: 'sym', type: TYPE.symlink, linkname: secret },
    { name: 'dev', type: TYPE.block, devmajor: 8, devminor: 0 },
  ])
  const r = await build(t, 'FROM base\nCOPY . /ctx/\nRUN cat /ctx/hard /ctx/sym /ctx/hostroot/* 2>&1; ls -la /ctx; true\n', ctx)
  noLeak(r.text, 'build status and logs')
  assert.ok(!existsSync(outside), `the context wrote ${outside} on the host`)
  assert.ok(!existsSync('/root/planted'), 'the context wrote through a symlink into the host\'s /root')
  if (r.status === 'ready') {
    const out = await inTemplate(r.name, 'cat /ctx/hard /ctx/sym /ctx/dev 2>&1 | head -c 2000; ls -la /ctx')
    noLeak(out, 'the built tree')
  }
})

test('ADD of a hostile archive extracts nothing outside its target', { timeout: 600_000 }, async (t) => {
  const evil = tar([
    { name: `../../../../../..${outside}`, body: 'escaped-dotdot\n' },
    { name: 'link', type: TYPE.symlink, linkname: '/root' },
    { name: 'link/planted', body: 'through-a-link\n' },
    { name: 'hard', type: TYPE.hardlink, linkname: secret },
  ])
  const ctx = tar([{ name: 'evil.tar', body: evil }])
  const r = await build(t, 'FROM base\nADD evil.tar /x/\nRUN cat /x/hard 2>&1; ls -la / /x /root; true\n', ctx)
  noLeak(r.text, 'build status and logs')
  assert.ok(!existsSync(outside), `ADD wrote ${outside} on the host`)
  if (r.status === 'ready') {
    const out = await inTemplate(r.name, `cat /x/hard 2>&1; ls /root; ls / | grep lelantos-build-escape; true`)
    noLeak(out, 'the built tree')
    assert.doesNotMatch(out, /planted/, 'ADD wrote through a symlink out of its target')
  }
})

test('a .dockerignore that links to a host file is not read on the host', { timeout: 600_000 }, async (t) => {
  const ctx = tar([{ name: '.dockerignore', type: TYPE.symlink, linkname: secret }, { name: 'a.txt', body: 'a\n' }])
  const r = await build(t, 'FROM base\nCOPY a.txt /a.txt\n', ctx)
  noLeak(r.text, 'build status and logs')
})
