// Template builds through the e2b SDK's Template API (Template.build, as its users
// call it): a cold build of a 10-step template, then a rebuild with nothing changed
// (every step from the layer cache) and one with its last step changed, beside the
// cold build; and for each, the time from the Template.build() call to its first log
// line: the SDK's own first line and the first line the server sent.
import { Template } from 'e2b'
import { randomBytes } from 'node:crypto'
import { api, count, log, round } from './features.lib.mjs'

const ROUNDS = count('BENCH_TEMPLATE_ROUNDS', 1)
const STEPS = 10

/** The template: the base, then STEPS RUN steps, each leaving a file; change alters the last. */
function tenSteps(run, change = '') {
  let t = Template().fromTemplate('base')
  for (let i = 1; i <= STEPS; i++) {
    t = t.runCmd(`echo ${run}-${i}${i === STEPS ? change : ''} > /tmp/bench-step-${i}`)
  }
  return t
}

/** One Template.build with its timings: total, first log line, first server line, the cache lines. */
async function build(template, ref) {
  const t0 = performance.now()
  let first
  let firstServer
  let waiting = false
  let cached = 0
  const lines = []
  await Template.build(template, ref, {
    cpuCount: 1, memoryMB: 512,
    onBuildLogs: (entry) => {
      const now = performance.now() - t0
      first ??= now
      // The SDK prints "Waiting for logs..." once the build has started; the server's lines come after it.
      if (waiting && firstServer === undefined && entry.message !== 'Build finished') firstServer = now
      if (entry.message === 'Waiting for logs...') waiting = true
      if (/using cache/.test(entry.message)) cached++
      lines.push(entry.message)
    },
  })
  const totalMs = performance.now() - t0
  if (firstServer === undefined) throw new Error(`${ref}: no log line came from the server: ${lines.join(' | ')}`)
  return { totalMs: round(totalMs, 1), firstLogMs: round(first, 2), firstServerLogMs: round(firstServer, 1), cachedSteps: cached }
}

/** ROUNDS rounds of cold, cached and one-step builds, each of a template of its own. */
export async function templates() {
  const rounds = []
  for (let r = 0; r < ROUNDS; r++) {
    const run = randomBytes(4).toString('hex')
    const name = `bench-tpl-${run}`
    try {
      log(`template builds, round ${r + 1}/${ROUNDS}: cold`)
      const cold = await build(tenSteps(run), `${name}:cold`)
      log('template builds: nothing changed')
      const cached = await build(tenSteps(run), `${name}:cached`)
      log('template builds: the last step changed')
      const oneStep = await build(tenSteps(run, '-changed'), `${name}:onestep`)
      if (cold.cachedSteps !== 0) throw new Error(`the cold build of ${name} used the cache ${cold.cachedSteps} times`)
      if (cached.cachedSteps < STEPS) throw new Error(`the unchanged rebuild of ${name} used the cache for ${cached.cachedSteps} of ${STEPS} steps`)
      rounds.push({ cold, cached, oneStep })
    } finally {
      await api('DELETE', `/templates/${name}`, [204, 404], undefined, 600_000) // slow under load: it removes each version's tree
    }
  }
  const med = (key, field) => round([...rounds.map((x) => x[key][field])].sort((a, b) => a - b)[(rounds.length - 1) >> 1], 2)
  const summary = {}
  for (const key of ['cold', 'cached', 'oneStep']) {
    summary[key] = Object.fromEntries(['totalMs', 'firstLogMs', 'firstServerLogMs', 'cachedSteps'].map((f) => [f, med(key, f)]))
  }
  return { steps: STEPS, rounds: rounds.length, ...summary, all: rounds }
}
