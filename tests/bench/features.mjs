// Measures the code interpreter, E2B's sandbox features and template builds through
// the official npm clients (e2b, @e2b/code-interpreter) against a running Lelantos
// server, each beside a baseline measured in the same run, and prints one JSON object
// on stdout (progress goes to stderr). scripts/bench.sh runs it through
// tests/bench/features.sh; cmd/benchreport reads its output.
//
// Settings: E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY (the server's client.env);
// BENCH_FEATURE_NET, the test network's JSON (features.net.mjs), for the egress
// figures; BENCH_FEATURES, the parts to run (default "interp,sandbox,templates");
// the counts are in features.interp.mjs, features.sandbox.mjs and
// features.templates.mjs (their BENCH_* defaults are listed in scripts/bench.sh);
// BENCH_FEATURES_DATA_DIR, the server's data directory, to find sandboxes' cgroups.
import { readFileSync } from 'node:fs'
import { interpreter } from './features.interp.mjs'
import { autoResume, egress, forks, snapshots } from './features.sandbox.mjs'
import { templates } from './features.templates.mjs'
import { API, KEY, SANDBOX_URL, log, round } from './features.lib.mjs'

const PARTS = ['interp', 'sandbox', 'templates']

async function main() {
  for (const [k, v] of Object.entries({ E2B_API_URL: API, E2B_SANDBOX_URL: SANDBOX_URL, E2B_API_KEY: KEY })) {
    if (!v) throw new Error(`${k} is not set`)
  }
  const parts = (process.env.BENCH_FEATURES || PARTS.join(',')).split(',').filter(Boolean)
  for (const p of parts) {
    if (!PARTS.includes(p)) throw new Error(`BENCH_FEATURES: unknown part ${JSON.stringify(p)}; want some of ${PARTS.join(',')}`)
  }
  const result = { parts }
  const took = {}
  const part = async (name, fn) => {
    const t0 = performance.now()
    result[name] = await fn()
    took[name] = round((performance.now() - t0) / 1000, 1)
  }
  // The interpreter first: the server builds its template from its start, and the
  // other figures are then measured without that build beside them.
  if (parts.includes('interp')) await part('interpreter', interpreter)
  if (parts.includes('sandbox')) {
    log('fork x1 and x10')
    await part('fork', forks)
    log('creates from a snapshot and from the template')
    await part('snapshot', snapshots)
    log('auto-resume by a request')
    await part('autoResume', autoResume)
    const netFile = process.env.BENCH_FEATURE_NET
    if (!netFile) throw new Error('BENCH_FEATURE_NET is not set: the egress figures need the test network')
    await part('egress', () => egress(JSON.parse(readFileSync(netFile, 'utf8'))))
  }
  if (parts.includes('templates')) await part('templates', templates)
  result.tookS = took
  console.log(JSON.stringify(result, null, 1))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
