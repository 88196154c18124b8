// End-to-end tests of E2B's build API with the unmodified npm e2b client: a template
// built in code (Template().fromTemplate('base').aptInstall(...)...) with Template.build
// and Template.buildInBackground, the uploads of its COPY steps (each sent once),
// Template.exists and the tags, then sandboxes of each build. run.sh runs this file with
// the newest client. Builds reach the Debian mirror (apt); PyPI is not reachable from
// this host, so pipInstall installs a local package copied into the template, with
// --no-index, and npmInstall a local package too (one without dependencies needs no
// registry), so that the test does not depend on npm's registry being reachable.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { call, assertError, eventually } from './lib/api.mjs'

const { Sandbox, Template, waitForPort } = await import(process.env.E2B_PACKAGE || 'e2b-2.51.0')
const RUN = randomBytes(3).toString('hex')
const NAME = `e2e-sdk-${RUN}`
const MARKER = `built-with-the-sdk-${RUN}`

const contextDir = mkdtempSync(join(tmpdir(), 'lelantos-e2e-sdk-'))
/** Writes name -> content into the file context. */
function put(files) {
  for (const [name, content] of Object.entries(files)) {
    const p = join(contextDir, name)
    mkdirSync(dirname(p), { recursive: true })
    writeFileSync(p, content)
  }
}
put({
  'app/index.html': `<html><body>${MARKER}</body></html>\n`,
  'app/notes.txt': 'version 1\n',
  'pylocal/pyproject.toml': '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n[project]\nname = "lelantos-e2e-pkg"\nversion = "1.0"\n',
  'pylocal/lelantos_e2e_pkg/__init__.py': `VALUE = "local-package-${RUN}"\n`,
  'npmlocal/package.json': JSON.stringify({ name: 'lelantos-e2e-npm', version: '1.0.0', main: 'index.js', bin: { 'lelantos-e2e-npm': 'cli.js' } }),
  'npmlocal/index.js': `module.exports = 'npm-package-${RUN}'\n`,
  'npmlocal/cli.js': `#!/usr/bin/env node\nconsole.log(require('./index.js'))\n`,
})

/** The template of the acceptance: every kind of step the SDK has. */
function sdkTemplate() {
  return Template({ fileContextPath: contextDir })
    .fromTemplate('base')
    .aptInstall(['tree'], { noInstallRecommends: true })
    .copy('pylocal', '/opt/pylocal')
    // No index is reachable from here: a local directory, with the setuptools the image has.
    .pipInstall(['--no-index', '--no-build-isolation', '/opt/pylocal'])
    .copy('npmlocal', '/opt/npmlocal')
    .npmInstall(['--install-links', '/opt/npmlocal'], { g: true })
    .copy('app', '/home/user/app', { user: 'user' })
    .setEnvs({ APP_MODE: 'sdk', GREETING: 'hello from the sdk' })
    .setWorkdir('/home/user/app')
    .setUser('user')
    .makeSymlink('/home/user/app/index.html', '/home/user/index-link.html')
    .setStartCmd('python3 -m http.server 8000 --bind 0.0.0.0', waitForPort(8000))
}

/** Fetches port 8000 of a sandbox through the proxy. */
function fetchPort(id, path = '/') {
  return fetch(new URL(path, process.env.E2B_SANDBOX_URL), {
    headers: { 'E2b-Sandbox-Id': id, 'E2b-Sandbox-Port': '8000' }, signal: AbortSignal.timeout(10_000),
  })
}

/** Waits for port 8000 of a sandbox to serve path; returns the body. */
function served(id, path) {
  return eventually(async () => {
    try {
      const res = await fetchPort(id, path)
      return res.status === 200 ? await res.text() : null
    } catch {
      return null
    }
  }, 20_000, `port 8000 of ${id} to serve ${path}`, 250)
}

test.after(async () => {
  await call('DELETE', `/templates/${NAME}`).catch(() => {})
  rmSync(contextDir, { recursive: true, force: true })
})

test('Template.build: apt, pip, npm, copied files, env, workdir, user, a symlink, a start and ready command', { timeout: 1_500_000 }, async () => {
  assert.equal(await Template.exists(NAME), false, 'no template yet')
  const logs = []
  const built = await Template.build(sdkTemplate(), `${NAME}:v1`, {
    cpuCount: 1, memoryMB: 1024, onBuildLogs: (entry) => logs.push(entry),
  })
  const text = logs.map((l) => l.message).join('\n')
  assert.equal(built.templateId, NAME, 'the default team\'s template ID is its name')
  assert.deepEqual(built.tags, ['v1'])
  assert.match(text, /Requesting build for template/, text)
  assert.match(text, new RegExp(`Template created with ID: ${NAME}, Build ID: ${built.buildId}`), text)
  assert.match(text, /Uploaded 'pylocal'/, text)
  assert.match(text, /Uploaded 'npmlocal'/, text)
  assert.match(text, /Uploaded 'app'/, text)
  assert.match(text, /Step 2\/\d+ : RUN apt-get update/, 'the server\'s step lines reach the SDK\'s log')
  assert.match(text, /Setting up tree/, 'the RUN step\'s output streams into the log')
  assert.match(text, /snapshot taken/, text)
  assert.match(text, /Build finished/, text)
  const levels = new Set(logs.map((l) => l.level))
  assert.ok([...levels].every((l) => ['debug', 'info', 'warn', 'error'].includes(l)), `log levels ${[...levels]}`)

  assert.equal(await Template.exists(NAME), true)
  assert.equal(await Template.exists(`${NAME}:v1`), true)
  assert.equal(await Template.exists(`e2e-nothing-${RUN}`), false)
  const tags = await Template.getTags(NAME)
  assert.deepEqual(tags.map((t) => t.tag).sort(), ['default', 'v1'], 'the first build is the template\'s current one too')
  assert.ok(tags.every((t) => t.buildId === built.buildId && t.createdAt instanceof Date && !Number.isNaN(t.createdAt.getTime())))

  const sbx = await Sandbox.create(NAME, { timeoutMs: 300_000 })
  try {
    const run = async (cmd) => {
      const r = await sbx.commands.run(cmd)
      assert.equal(r.exitCode, 0, `${cmd}: ${r.stderr}`)
      return r.stdout.trim()
    }
    assert.match(await run('tree --version'), /^tree v\d/, 'aptInstall')
    assert.equal(await run('python3 -c "import lelantos_e2e_pkg; print(lelantos_e2e_pkg.VALUE)"'), `local-package-${RUN}`, 'pipInstall')
    assert.equal(await run('lelantos-e2e-npm'), `npm-package-${RUN}`, 'npmInstall -g')
    assert.equal(await sbx.files.read('/home/user/app/index.html'), `<html><body>${MARKER}</body></html>\n`, 'copy')
    assert.equal(await run('stat -c %U /home/user/app/notes.txt'), 'user', 'copy with a user')
    assert.equal(await run('echo "$APP_MODE|$GREETING"'), 'sdk|hello from the sdk', 'setEnvs')
    assert.equal(await run('pwd'), '/home/user/app', 'setWorkdir')
    assert.equal(await run('whoami'), 'user', 'setUser')
    assert.equal(await run('readlink /home/user/index-link.html'), '/home/user/app/index.html', 'makeSymlink')
    assert.ok((await served(sbx.sandboxId, '/index.html')).includes(MARKER), 'the start command serves port 8000')
  } finally {
    await Sandbox.kill(sbx.sandboxId).catch(() => {})
  }
})

test('buildInBackground and a tag: the upload of unchanged files is skipped, name:tag picks the build', { timeout: 1_500_000 }, async () => {
  put({ 'app/notes.txt': 'version 2\n' })
  const logs = []
  const bg = await Template.buildInBackground(sdkTemplate(), `${NAME}:v2`, { cpuCount: 1, memoryMB: 1024, onBuildLogs: (l) => logs.push(l) })
  const text = logs.map((l) => l.message).join('\n')
  assert.match(text, /Skipping upload of 'pylocal', already cached/, text)
  assert.match(text, /Uploaded 'app'/, 'the changed directory is uploaded again')
  assert.equal(bg.templateId, NAME)
  let offset = 0
  const seen = []
  const status = await eventually(async () => {
    const st = await Template.getBuildStatus({ templateId: bg.templateId, buildId: bg.buildId }, { logsOffset: offset })
    offset += st.logEntries.length
    seen.push(...st.logEntries.map((e) => e.message))
    return st.status === 'ready' || st.status === 'error' ? st : null
  }, 1_200_000, 'the background build to end', 1000)
  assert.equal(status.status, 'ready', seen.join('\n'))
  assert.ok(seen.some((m) => /using cache/.test(m)), 'the unchanged steps come from the cache')

  const tags = await Template.getTags(NAME)
  const byTag = Object.fromEntries(tags.map((t) => [t.tag, t.buildId]))
  assert.equal(byTag.v2, bg.buildId)
  assert.notEqual(byTag.default, bg.buildId, 'a build tagged v2 only leaves the current build as it is')
  const assigned = await Template.assignTags(`${NAME}:v2`, ['prod'])
  assert.equal(assigned.buildId, bg.buildId)
  assert.deepEqual(assigned.tags, ['prod'])
  await assert.rejects(Template.assignTags(`${NAME}:nope`, 'x'), /nope/)

  const v1 = await Sandbox.create(NAME, { timeoutMs: 120_000 })
  const prod = await Sandbox.create(`${NAME}:prod`, { timeoutMs: 120_000 })
  try {
    assert.equal(await v1.files.read('/home/user/app/notes.txt'), 'version 1\n', 'the name alone is its default tag')
    assert.equal(await prod.files.read('/home/user/app/notes.txt'), 'version 2\n', 'name:tag is the tagged build')
    assert.equal(await served(prod.sandboxId, '/notes.txt'), 'version 2\n')
  } finally {
    await Sandbox.kill(v1.sandboxId).catch(() => {})
    await Sandbox.kill(prod.sandboxId).catch(() => {})
  }
  await Template.removeTags(NAME, 'prod')
  assert.equal(await Template.exists(`${NAME}:prod`), false)
  await assert.rejects(Template.removeTags(NAME, 'default'), /default/)
})

test('the build API refuses bad requests naming the field; a failed build names its step', { timeout: 60_000 }, async () => {
  assertError(await call('POST', '/v3/templates', { body: {} }), 400, 'name')
  assertError(await call('POST', '/v3/templates', { body: { name: `x-${RUN}`, tags: ['Not A Tag'] } }), 400, 'tags')
  const req = await call('POST', '/v3/templates', { body: { name: `e2e-sdk-bad-${RUN}` } })
  assert.equal(req.status, 202, req.text)
  const { templateID, buildID } = req.json
  const start = `/v2/templates/${templateID}/builds/${buildID}`
  assertError(await call('POST', start, { body: { fromTemplate: 'base', steps: [{ type: 'EXPOSE', args: ['80'] }] } }), 400, 'steps[0]')
  assertError(await call('POST', start, { body: { fromTemplate: 'base', steps: [{ type: 'COPY', args: ['a', '/b'] }] } }), 400, 'filesHash')
  assertError(await call('GET', `/templates/${templateID}/files/nothex`), 400, 'hash')
  const link = await call('GET', `/templates/${templateID}/files/${'0'.repeat(64)}`)
  assert.equal(link.status, 201, link.text)
  const forged = link.json.url.replace(/signature=[0-9a-f]+/, `signature=${'0'.repeat(64)}`)
  const put = await fetch(forged, { method: 'PUT', body: 'x' })
  assert.equal(put.status, 403, 'a forged upload link is refused')
  // A build that is never started fails after its wait; this one is failed now by a bad base.
  const bad = await call('POST', start, { body: { fromTemplate: `none-${RUN}` } })
  assert.equal(bad.status, 202, bad.text)
  const st = await eventually(async () => {
    const r = await call('GET', `/templates/${templateID}/builds/${buildID}/status`)
    return r.json && r.json.status === 'error' ? r.json : null
  }, 60_000, 'the build to fail')
  assert.equal(st.reason.step, 'base', JSON.stringify(st))
  assert.match(st.reason.message, /no template has that name/)
})
