// What agents do first in a base sandbox, through the npm e2b client as `user`:
// sudo without a password, python, pip and npm -g installs, a C compiler; and the
// URLs the client hands out (signed file URLs, port hosts) opened with a plain curl,
// no headers, in the default setup (no --domain, no wildcard DNS).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
const { Sandbox } = await import(process.env.E2B_PACKAGE || 'e2b-2.51.0')

const run = promisify(execFile)
let sbx
let local

before(async () => {
  sbx = await Sandbox.create({ timeoutMs: 600_000, metadata: { suite: 'base' } })
  local = await mkdtemp(join(tmpdir(), 'lelantos-base-'))
})

after(async () => {
  await sbx?.kill()
  if (local) await rm(local, { recursive: true, force: true })
})

/** Runs cmd as user and returns its stdout; a non-zero exit fails with the output. */
async function as(cmd, opts = {}) {
  const r = await sbx.commands.run(cmd, { timeoutMs: 120_000, ...opts }).catch((e) => {
    throw new Error(`${cmd}: exit ${e.exitCode}: ${e.stdout ?? ''}${e.stderr ?? e.message}`)
  })
  return r.stdout
}

test('the default user is user, and sudo needs no password', async () => {
  assert.equal((await as('id -un')).trim(), 'user')
  assert.equal((await as('sudo -n id -u')).trim(), '0')
  assert.doesNotMatch((await sbx.commands.run('sudo -n true')).stderr, /unable to resolve host/)
})

test('python is python3, and pip installs a local package as user', async () => {
  assert.match(await as('python -c "import sys; print(sys.version_info[0])"'), /^3/)
  await as(`mkdir -p /tmp/pkg/lelantos_probe && echo 'VALUE = 42' > /tmp/pkg/lelantos_probe/__init__.py && printf '[project]\\nname = "lelantos-probe"\\nversion = "0.1"\\n[build-system]\\nrequires = ["setuptools"]\\nbuild-backend = "setuptools.build_meta"\\n' > /tmp/pkg/pyproject.toml`)
  // No package index is reachable in tests: what matters is that pip does not
  // refuse the environment (no EXTERNALLY-MANAGED marker, no venv needed).
  await as('cd /tmp && pip install --no-index --no-build-isolation ./pkg')
  assert.equal((await as('cd / && python -c "import lelantos_probe; print(lelantos_probe.VALUE)"')).trim(), '42')
})

test('npm install -g of a local package works as user', async () => {
  await as(`mkdir -p /tmp/npmpkg && cd /tmp/npmpkg && printf '{"name":"lelantos-hello","version":"1.0.0","bin":{"lelantos-hello":"hello.js"}}' > package.json && printf '#!/usr/bin/env node\\nconsole.log("hello from npm -g")\\n' > hello.js && chmod +x hello.js`)
  await as('cd /tmp && npm install -g --offline --no-audit --no-fund ./npmpkg')
  assert.equal((await as('lelantos-hello')).trim(), 'hello from npm -g')
})

test('gcc and make compile a C program', async () => {
  await sbx.files.write('/tmp/c/hello.c', '#include <stdio.h>\nint main(void){printf("compiled %d\\n", 6*7);return 0;}\n')
  await sbx.files.write('/tmp/c/Makefile', 'hello: hello.c\n\tgcc -O2 -o hello hello.c\n')
  await as('cd /tmp/c && make')
  assert.equal((await as('/tmp/c/hello')).trim(), 'compiled 42')
})

test('a signed download URL works with a plain curl', async () => {
  await sbx.files.write('/home/user/signed.txt', 'signed content')
  const url = await sbx.downloadUrl('/home/user/signed.txt', { useSignatureExpiration: 120 })
  const { stdout } = await run('curl', ['-sS', '--fail-with-body', url])
  assert.equal(stdout, 'signed content')
  // The same URL with its signature altered opens nothing.
  const forged = url.replace(/signature=v1_./, (m) => m.slice(0, -1) + (m.endsWith('A') ? 'B' : 'A'))
  const bad = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', forged])
  assert.notEqual(bad.stdout, '200')
})

test('a signed upload URL works with a plain curl', async () => {
  const url = await sbx.uploadUrl('/home/user/uploaded.txt')
  await writeFile(join(local, 'up.txt'), 'uploaded by curl')
  await run('curl', ['-sS', '--fail-with-body', '-F', `file=@${join(local, 'up.txt')}`, url])
  assert.equal(await sbx.files.read('/home/user/uploaded.txt'), 'uploaded by curl')
  assert.equal((await as('stat -c %U /home/user/uploaded.txt')).trim(), 'user')
})

test('getHost(port) opens with curl on this machine', async () => {
  await as('mkdir -p /tmp/www && echo served-from-sandbox > /tmp/www/index.html')
  await sbx.commands.run('cd /tmp/www && python3 -m http.server 8080', { background: true })
  const host = sbx.getHost(8080)
  assert.match(host, /^8080-[a-z0-9]+\.localhost:\d+$/)
  let body = ''
  for (let i = 0; i < 100 && !body.includes('served-from-sandbox'); i++) {
    body = (await run('curl', ['-sS', `http://${host}/`]).catch(() => ({ stdout: '' }))).stdout
    if (!body.includes('served-from-sandbox')) await new Promise((r) => setTimeout(r, 100))
  }
  assert.match(body, /served-from-sandbox/)
})
