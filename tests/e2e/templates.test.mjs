// End-to-end tests of templates: a template built from a Dockerfile with
// `bin/lelantos template build` (the CLI, against the API run.sh started), sandboxes
// made from it with the npm e2b client, the layer cache, and failing builds. run.sh
// runs this file once, with the newest client. Builds reach the Debian mirror.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { call, assertError, eventually } from './lib/api.mjs'

const { Sandbox } = await import(process.env.E2B_PACKAGE || 'e2b-2.51.0')
const LELANTOS = fileURLToPath(new URL('../../bin/lelantos', import.meta.url))
const RUN = randomBytes(3).toString('hex')
const NAME = `e2e-web-${RUN}`
const MARKER = `served-by-the-template-${RUN}`

// The template of the acceptance: a package from the Debian mirror, a copied script,
// ENV, WORKDIR, USER and a start command serving HTTP, snapshotted once ready.
const DOCKERFILE = `FROM base
RUN apt-get update && apt-get install -y --no-install-recommends tree && rm -rf /var/lib/apt/lists/*
COPY greet.sh /usr/local/bin/greet
ENV GREETING="hello from the template" APP_MODE=template
WORKDIR /srv/app
COPY site/ /srv/app/
RUN chown -R user:user /srv/app
USER user
`
// It notes when it started (ms): a sandbox restored from the build's snapshot has
// a time from before its create.
const START_CMD = 'date +%s%3N > /tmp/start-cmd-at && exec python3 -m http.server 8080 --bind 0.0.0.0 --directory /srv/app'
const READY_CMD = 'curl -sf localhost:8080'

const contexts = []

/** Writes a build context directory from name -> content (names ending in * are executable). */
function makeContext(files) {
  const dir = mkdtempSync(join(tmpdir(), 'lelantos-e2e-ctx-'))
  contexts.push(dir)
  for (const [name, content] of Object.entries(files)) {
    const exec = name.endsWith('*')
    const p = join(dir, exec ? name.slice(0, -1) : name)
    mkdirSync(dirname(p), { recursive: true })
    writeFileSync(p, content, { mode: exec ? 0o755 : 0o644 })
  }
  return dir
}

/** Runs bin/lelantos; resolves {code, stdout, stderr} whatever the exit code. */
function cli(args, timeoutMs = 900_000) {
  return new Promise((resolve) => {
    execFile(LELANTOS, args, { env: process.env, timeout: timeoutMs, maxBuffer: 64 << 20, encoding: 'utf8' },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr, what: `lelantos ${args.join(' ')}` }))
  })
}

/** The web template's context. */
function webContext() {
  return makeContext({
    'Dockerfile': DOCKERFILE,
    'greet.sh*': '#!/bin/sh\necho "greetings from a copied script"\n',
    'site/index.html': `<html><body>${MARKER}</body></html>\n`,
    // Excluded by .dockerignore: never copied, and changing it keeps the cache.
    'site/notes.tmp': `scratch ${Date.now()}\n`,
    '.dockerignore': '**/*.tmp\n',
  })
}

/** Builds the web template with the CLI, asserting success; returns the CLI's output. */
async function buildWeb() {
  const dir = webContext()
  const res = await cli(['template', 'build', '-n', NAME, '--cpu', '1', '--memory', '512',
    '--start-cmd', START_CMD, '--ready-cmd', READY_CMD, dir])
  assert.equal(res.code, 0, `${res.what} failed:\n${res.stdout}\n${res.stderr}`)
  assert.match(res.stdout, new RegExp(`Template ${NAME} is ready \\(build [0-9a-f-]{36}\\)`), res.stdout)
  return res.stdout
}

/** Fetches port 8080 of a sandbox through the proxy. */
function fetchPort(id, path = '/') {
  return fetch(new URL(path, process.env.E2B_SANDBOX_URL), {
    headers: { 'E2b-Sandbox-Id': id, 'E2b-Sandbox-Port': '8080' }, signal: AbortSignal.timeout(10_000),
  })
}

test.after(async () => {
  await call('DELETE', `/templates/${NAME}`).catch(() => {})
  for (const dir of contexts) rmSync(dir, { recursive: true, force: true })
})

test('a template from a Dockerfile: packages, files, env, workdir, user and a running server', { timeout: 1_200_000 }, async () => {
  const out = await buildWeb()
  assert.match(out, /Step 1\/8 : FROM base/, out)
  assert.match(out, /Setting up tree/, 'the RUN step output streams into the build log')
  assert.match(out, /Ready command "curl -sf localhost:8080" succeeded/, out)
  assert.match(out, / ---> snapshot taken/, out)

  const listed = await cli(['template', 'ls'])
  assert.equal(listed.code, 0, listed.stderr)
  assert.match(listed.stdout, new RegExp(`^${NAME}\\s+${NAME}\\s+ready\\s+1\\s+512\\s`, 'm'), listed.stdout)
  const info = await call('GET', `/templates/${NAME}`)
  assert.equal(info.status, 200, info.text)
  assert.equal(info.json.builds.length, 1)
  assert.equal(info.json.builds[0].status, 'ready')

  const created = Date.now()
  const sbx = await Sandbox.create(NAME, { envs: { APP_MODE: 'from-create' }, timeoutMs: 300_000 })
  try {
    // The start command was snapshotted running: it answers without being started.
    const page = await eventually(async () => {
      try {
        const res = await fetchPort(sbx.sandboxId)
        return res.status === 200 ? await res.text() : null
      } catch {
        return null
      }
    }, 15_000, 'the template server to answer through the proxy', 250)
    assert.ok(page.includes(MARKER), `port 8080 serves the template's page: ${page}`)
    const startedAt = Number(await sbx.files.read('/tmp/start-cmd-at'))
    assert.ok(startedAt > 0 && startedAt < created, `the start command ran at build time (${startedAt}), not after the create (${created}): the sandbox was restored from the snapshot`)

    const run = async (cmd) => {
      const r = await sbx.commands.run(cmd)
      assert.equal(r.exitCode, 0, `${cmd}: ${r.stderr}`)
      return r.stdout.trim()
    }
    assert.match(await run('tree --version'), /^tree v\d/, 'tree from the RUN step')
    assert.match(await run('mkdir -p /tmp/t/a && tree /tmp/t'), /directories, 0 files/)
    assert.equal(await run('greet'), 'greetings from a copied script', 'the COPYed script is on PATH and executable')
    assert.equal(await sbx.files.read('/srv/app/index.html'), `<html><body>${MARKER}</body></html>\n`)
    assert.equal(await run('ls /srv/app'), 'index.html', '.dockerignore kept notes.tmp out')
    assert.equal(await run('echo "$GREETING|$APP_MODE"'), 'hello from the template|from-create',
      'the template\'s ENV, with the create request\'s variables winning')
    assert.equal(await run('pwd'), '/srv/app', 'the WORKDIR is the default working directory')
    assert.equal(await run('whoami'), 'user', 'the USER is the default user')
    assert.match(await run('ps -eo user=,args= | grep "[h]ttp.server"'), /^user\s+python3 -m http\.server 8080/m,
      'the start command runs as the template\'s user')

    // A template in use cannot be deleted.
    const refused = await cli(['template', 'rm', NAME])
    assert.equal(refused.code, 1)
    assert.match(refused.stderr, /template rm .*in use: sandboxes still run from it/, refused.stderr)
  } finally {
    await Sandbox.kill(sbx.sandboxId).catch(() => {})
  }
})

test('a rebuild with the same Dockerfile and context hits the layer cache', { timeout: 900_000 }, async () => {
  const out = await buildWeb()
  // RUN, COPY, WORKDIR (it creates /srv/app), COPY and RUN change files; FROM, ENV and USER do not.
  const cached = out.match(/ ---> using cache/g) || []
  assert.equal(cached.length, 5, `every file-changing step is cached:\n${out}`)
  assert.match(out, new RegExp(`template ${NAME} built: .*\\(8 steps, 5 cached, 0 run\\)`), out)
  assert.doesNotMatch(out, /Setting up tree/, 'apt-get did not run again')
  const info = await call('GET', `/templates/${NAME}`)
  assert.equal(info.status, 200, info.text)
  assert.equal(info.json.builds.length, 2, 'two builds')
  assert.ok(info.json.builds.every((b) => b.status === 'ready'))

  // The new version serves too.
  const sbx = await Sandbox.create(NAME, { timeoutMs: 120_000 })
  try {
    const res = await eventually(async () => {
      try {
        const r = await fetchPort(sbx.sandboxId)
        return r.status === 200 ? r : null
      } catch {
        return null
      }
    }, 15_000, 'the rebuilt template server to answer', 250)
    assert.ok((await res.text()).includes(MARKER))
  } finally {
    await Sandbox.kill(sbx.sandboxId).catch(() => {})
  }
  const rm = await cli(['template', 'rm', NAME])
  assert.equal(rm.code, 0, rm.stderr)
  assert.match(rm.stdout, new RegExp(`deleted template ${NAME}`))
  assertError(await call('GET', `/templates/${NAME}`), 404)
  await assert.rejects(Sandbox.create(NAME, { timeoutMs: 30_000 }), /400: .*templateID/)
})

test('a multi-stage Dockerfile (COPY --from, heredoc RUN, LABEL, EXPOSE, CMD) builds, and its CMD serves', { timeout: 1_200_000 }, async () => {
  const name = `e2e-stages-${RUN}`
  const dir = makeContext({
    'Dockerfile': `# syntax=docker/dockerfile:1
ARG SITE_TITLE=stages
FROM base AS build
ARG SITE_TITLE
COPY page.txt /src/
RUN <<EOF
set -e
mkdir -p /out
{ echo "<h1>$SITE_TITLE</h1>"; cat /src/page.txt; } > /out/index.html
EOF

FROM base
LABEL org.example.app="e2e-stages" org.example.run="${RUN}"
COPY --from=build /out/index.html /srv/site/index.html
EXPOSE 8081
WORKDIR /srv/site
CMD ["python3", "-m", "http.server", "8081", "--bind", "0.0.0.0"]
HEALTHCHECK CMD curl -sf localhost:8081
`,
    'page.txt': `${MARKER}-stages\n`,
  })
  const res = await cli(['template', 'build', '-n', name, '--cpu', '1', '--memory', '512', '--build-arg', 'SITE_TITLE=from-the-cli', dir])
  try {
    assert.equal(res.code, 0, `${res.what} failed:\n${res.stdout}\n${res.stderr}`)
    assert.match(res.stdout, /Start command from the Dockerfile's ENTRYPOINT and CMD: python3 -m http.server 8081/, res.stdout)
    assert.match(res.stdout, /Ready command from the Dockerfile's HEALTHCHECK: curl -sf localhost:8081/, res.stdout)
    assert.match(res.stdout, / ---> snapshot taken/, res.stdout)
    const sbx = await Sandbox.create(name, { timeoutMs: 120_000 })
    try {
      const page = await eventually(async () => {
        try {
          const r = await fetch(new URL('/', process.env.E2B_SANDBOX_URL), {
            headers: { 'E2b-Sandbox-Id': sbx.sandboxId, 'E2b-Sandbox-Port': '8081' }, signal: AbortSignal.timeout(10_000),
          })
          return r.status === 200 ? await r.text() : null
        } catch {
          return null
        }
      }, 15_000, 'the CMD to serve port 8081', 250)
      assert.equal(page, `<h1>from-the-cli</h1>\n${MARKER}-stages\n`, 'the final stage serves what the build stage made')
      const r = await sbx.commands.run('test ! -e /src/page.txt && echo only-the-copied-file')
      assert.equal(r.stdout.trim(), 'only-the-copied-file', 'the build stage\'s other files are not in the template')
    } finally {
      await Sandbox.kill(sbx.sandboxId).catch(() => {})
    }
  } finally {
    await call('DELETE', `/templates/${name}`).catch(() => {})
  }
})

test('an instruction that cannot apply fails with its line number; nothing is built', { timeout: 60_000 }, async () => {
  const name = `e2e-bad-${RUN}`
  const dir = makeContext({ 'Dockerfile': 'FROM base\nRUN echo fine\n\nONBUILD RUN make\n' })
  const res = await cli(['template', 'build', '-n', name, dir])
  assert.equal(res.code, 1, `${res.what}: ${res.stdout}${res.stderr}`)
  assert.match(res.stderr, /template build: dockerfile: Dockerfile line 4: ONBUILD: cannot apply/, res.stderr)
  assertError(await call('GET', `/templates/${name}`), 404)
})

test('a failing RUN shows its output in the build log and leaves no template', { timeout: 600_000 }, async () => {
  const name = `e2e-fail-${RUN}`
  const dir = makeContext({ 'Dockerfile': `FROM base\nENV X=1\nRUN echo "about to fail ${RUN}" && ls /no/such/dir-${RUN}\nRUN echo never\n` })
  const res = await cli(['template', 'build', '-n', name, dir])
  assert.equal(res.code, 1, `${res.what}: ${res.stdout}${res.stderr}`)
  assert.match(res.stdout, new RegExp(`about to fail ${RUN}`), 'the step\'s stdout is in the log')
  assert.match(res.stdout, new RegExp(`dir-${RUN}.*No such file or directory`), 'and its stderr')
  assert.doesNotMatch(res.stdout, /Step 4\/4/, 'the build stopped at the failing step')
  assert.match(res.stderr, /failed: .*line 3/, `the reason names the line: ${res.stderr}`)
  const buildID = res.stdout.match(/build ([0-9a-f-]{36})/)[1]
  const st = await call('GET', `/templates/${name}/builds/${buildID}/status?logsOffset=0&level=error`)
  assert.equal(st.status, 200, st.text)
  assert.equal(st.json.status, 'error')
  assert.match(st.json.reason.message, /line 3/)
  assert.ok(st.json.logEntries.length > 0 && st.json.logEntries.every((e) => e.level === 'error'), st.text)
  assertError(await call('GET', `/templates/${name}`), 404)
  const list = await call('GET', '/templates')
  assert.equal(list.status, 200)
  assert.ok(!list.json.some((t) => t.templateID === name), 'not listed')
  assertError(await call('DELETE', '/templates/base'), 409, 'default template')
})

test('template routes refuse bad requests naming the field', { timeout: 30_000 }, async () => {
  assertError(await call('POST', '/templates', { body: { dockerfile: 'FROM base' } }), 400, 'name')
  assertError(await call('POST', '/templates', { body: { name: 'Bad Name', dockerfile: 'FROM base' } }), 400, 'name')
  assertError(await call('POST', '/templates', { body: { name: 'ok', dockerfile: 'FROM base', context: '%%%' } }), 400, 'context')
  assertError(await call('POST', '/templates', { body: { name: 'ok', dockerfile: 'FROM base', cpuCount: 1000 } }), 400, 'cpuCount')
  assertError(await call('GET', '/templates', { key: 'e2b_0000000000000000000000000000000000000000' }), 401)
  assertError(await call('DELETE', `/templates/none-${RUN}`), 404)
  assertError(await call('GET', '/templates/base/builds/00000000-0000-4000-8000-000000000000/status'), 404)
})
