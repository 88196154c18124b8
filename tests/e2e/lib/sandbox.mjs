// Helpers that act inside a sandbox through the e2b client: a process whose
// state lives only in its memory (to tell a resumed process from a restarted
// one), and opening a client for a sandbox created by plain HTTP. Also a host
// check that a killed sandbox left no runtime process behind.
import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { eventually } from './api.mjs'

/**
 * The memory probe: a Python process that picks a random token at start and
 * rewrites "<token> <count> <pid>" to a file ten times a second. The token
 * and the count exist only in its memory: after a resume the same token with
 * a larger count proves that the process itself continued; a restarted
 * process would show a new token, a dead one a count that no longer grows.
 */
const PROBE = `
import os, secrets, sys, time
path = sys.argv[1]
token = secrets.token_hex(8)
n = 0
while True:
    n += 1
    with open(path + '.tmp', 'w') as f:
        f.write('%s %d %d\\n' % (token, n, os.getpid()))
    os.replace(path + '.tmp', path)
    time.sleep(0.1)
`

/** Opens the e2b client on a sandbox from its create/connect answer, without calling the API. */
export function openClient(Sandbox, created) {
  return new Sandbox({
    sandboxId: created.sandboxID,
    envdAccessToken: created.envdAccessToken,
    envdVersion: created.envdVersion,
    sandboxDomain: created.domain || undefined,
  })
}

/**
 * Starts the memory probe in sbx, writing to path, detached from the
 * command's stream, and returns its first reading.
 */
export async function startProbe(sbx, path = '/tmp/lelantos-probe') {
  await sbx.files.write('/tmp/lelantos-probe.py', PROBE)
  await sbx.commands.run(`rm -f ${path} && (setsid nohup python3 /tmp/lelantos-probe.py ${path} >/dev/null 2>&1 &)`, { timeoutMs: 30_000 })
  return eventually(() => readProbe(sbx, path).catch(() => null), 15_000, 'the memory probe to start')
}

/** Reads the probe's file: { token, n, pid }. */
export async function readProbe(sbx, path = '/tmp/lelantos-probe') {
  const text = (await sbx.files.read(path, { requestTimeoutMs: 30_000 })).trim()
  const m = /^([0-9a-f]{16}) (\d+) (\d+)$/.exec(text)
  if (!m) throw new Error(`unexpected probe content ${JSON.stringify(text)}`)
  return { token: m[1], n: Number(m[2]), pid: Number(m[3]) }
}

/**
 * Asserts that the probe that gave `before` is the same process, still alive:
 * same token, and its count keeps growing past before.n.
 */
export async function assertProbeContinues(sbx, before, path = '/tmp/lelantos-probe', what = 'the probe') {
  const now = await readProbe(sbx, path)
  assert.equal(now.token, before.token, `${what}: same in-memory token, so the same process (not restarted)`)
  assert.equal(now.pid, before.pid, `${what}: same pid`)
  assert.ok(now.n >= before.n, `${what}: count did not go back (${before.n} -> ${now.n})`)
  const later = await eventually(async () => {
    const r = await readProbe(sbx, path)
    return r.n > now.n + 2 ? r : null
  }, 15_000, `${what} to keep counting past ${now.n}`)
  assert.equal(later.token, before.token, `${what}: token stays the same`)
  return later
}

/** Waits until no host process (the sandbox's runtime) names sandbox id in its command line. */
export async function assertNoHostProcess(id) {
  const holders = async () => {
    const out = []
    for (const pid of await readdir('/proc').catch(() => [])) {
      if (!/^\d+$/.test(pid)) continue
      const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
      if (cmd.split('\0').some((arg) => arg.includes(id))) out.push(`${pid}: ${cmd.replaceAll('\0', ' ').slice(0, 200)}`)
    }
    return out
  }
  await eventually(async () => (await holders()).length === 0, 15_000, `no process left for ${id}`, 250)
    .catch(async (err) => { throw new Error(`${err.message}: ${(await holders()).join('; ')}`) })
}
