// Running E2B's CLI (npm @e2b/cli, unmodified) as its users run it: a child
// process configured by the environment run.sh takes from the server's
// client.env (E2B_API_URL, E2B_API_KEY, E2B_SANDBOX_URL), with a HOME of its own
// (no ~/.e2b login of the machine's user) and its update check switched off
// (NO_UPDATE_NOTIFIER, the CLI's own setting); on pipes, or on a pseudo-terminal
// made by script(1) for the interactive commands. Also the parsing of what it
// prints: its tables, and its output without terminal colours.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { killQuietly } from '../e2e/lib/api.mjs'

export { call, eventually, createSandbox, killQuietly, sleep } from '../e2e/lib/api.mjs'

/** The CLI's entry point, as its package's bin names it. */
export const CLI = fileURLToPath(new URL('./node_modules/@e2b/cli/dist/index.js', import.meta.url))

/** The environment of every CLI run. */
function cliEnv(extra = {}) {
  const env = { ...process.env, HOME: process.env.E2BCLI_HOME, NO_UPDATE_NOTIFIER: '1', ...extra }
  for (const k of Object.keys(env)) {
    if (k.startsWith('npm_')) delete env[k]
  }
  assert.ok(env.HOME, 'E2BCLI_HOME is set (run the suite with tests/e2bcli/run.sh)')
  return env
}

/**
 * Runs the CLI with args and returns {code, stdout, stderr}. stdin is
 * /dev/null (a terminal-less user), or input when given (piped, as in
 * `echo x | e2b ...`). A run past timeoutMs is killed and fails the test.
 */
export function e2b(args, { input, cwd, timeoutMs = 180_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd, env: cliEnv(), stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += d })
    child.stderr.on('data', (d) => { stderr += d })
    if (input !== undefined) child.stdin.end(input)
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`e2b ${args.join(' ')}: still running after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, timeoutMs)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: signal ? `signal ${signal}` : code, stdout, stderr, what: `e2b ${args.join(' ')}` })
    })
  })
}

/** Asserts that a run ended with code and returns its stdout. */
export function ok(r, code = 0) {
  assert.equal(r.code, code, `${r.what}: exit ${r.code}, want ${code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r.stdout
}

const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-B]|\x1b[=>]/g

/** s without terminal escape sequences (colours, links, cursor movements) and carriage returns. */
export function plain(s) {
  return s.replace(ANSI, '').replace(/\r/g, '')
}

/**
 * Parses one of the CLI's tables (upper-case headers, columns padded with
 * spaces) in out into objects keyed by header. The first line that starts with
 * firstHeader is the header line; the rows follow it up to the first empty line
 * or the CLI's note that the list was cut ("Showing first N ...").
 */
export function table(out, firstHeader) {
  const lines = plain(out).split('\n')
  const at = lines.findIndex((l) => l.startsWith(firstHeader))
  assert.ok(at >= 0, `a table with ${firstHeader} in:\n${out}`)
  const cols = [...lines[at].matchAll(/\S+(?: \S+)*/g)].map((m) => ({ name: m[0], start: m.index }))
  const rows = []
  for (const line of lines.slice(at + 1)) {
    if (line.trim() === '' || line.startsWith('Showing first ')) break
    rows.push(Object.fromEntries(cols.map((c, i) => [c.name, line.slice(c.start, cols[i + 1]?.start).trim()])))
  }
  return rows
}

/** Creates a sandbox with `e2b sandbox create <template> --detach` and returns its ID; it is killed when t ends. */
export async function createDetached(t, template = 'base', extra = []) {
  const r = await e2b(['sandbox', 'create', template, '--detach', ...extra])
  const id = ok(r).trim()
  assert.match(id, /^[a-z0-9]+$/, `${r.what} prints the sandbox ID alone: ${JSON.stringify(r.stdout)}`)
  t.after(() => killQuietly(id))
  return id
}

/**
 * The CLI on a pseudo-terminal of rows x cols, made by script(1) as a user's
 * terminal emulator would: what is written to it is typed, what the CLI prints
 * is collected (output(), without escape sequences by plain()).
 */
export function terminal(args, { rows = 30, cols = 100 } = {}) {
  const quoted = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
  const child = spawn('script', ['--quiet', '--return', '--command', `stty rows ${rows} cols ${cols}; exec ${quoted}`, '/dev/null'], {
    env: cliEnv({ SHELL: '/bin/sh', TERM: 'xterm' }), stdio: ['pipe', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d) => { out += d })
  child.stderr.on('data', (d) => { out += d })
  const ended = new Promise((resolve) => child.on('close', (code, signal) => resolve(signal ? `signal ${signal}` : code)))
  return {
    output: () => plain(out),
    /** Types text and Enter. */
    typeLine: (text) => child.stdin.write(`${text}\r`),
    /** Waits until the output matches re (a RegExp or a string). */
    async waitFor(re, timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs
      const test = (s) => (typeof re === 'string' ? s.includes(re) : re.test(s))
      while (!test(plain(out))) {
        assert.ok(Date.now() < end, `no ${re} on the terminal within ${timeoutMs} ms:\n${plain(out)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    },
    /** Waits for the CLI to end and returns its exit code. */
    async exit(timeoutMs = 30_000) {
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
      const code = await ended
      clearTimeout(timer)
      child.stdin.destroy()
      return code
    },
    kill: () => child.kill('SIGKILL'),
  }
}
