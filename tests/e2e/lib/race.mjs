// Helpers of the race tests: many lifecycle calls on one sandbox at once, and
// the rules their answers must follow.
import assert from 'node:assert/strict'
import { call, sleep } from './api.mjs'

/** Fires calls, each after delayMs(op) (at once by default); returns [{op, status, text, json, sentAt, doneAt}] in the order given. */
export async function fireAll(ops, delayMs = () => 0) {
  return Promise.all(ops.map(async ([op, method, path, body]) => {
    const wait = delayMs(op)
    if (wait > 0) await sleep(wait)
    const sentAt = Date.now()
    const res = await call(method, path, { body, timeoutMs: 180_000 })
    return { op, status: res.status, text: res.text, json: res.json, sentAt, doneAt: Date.now() }
  }))
}

/** Counts answers by call and status, e.g. "pause 204×3". */
export function summarize(results) {
  const counts = {}
  for (const r of results) counts[`${r.op} ${r.status}`] = (counts[`${r.op} ${r.status}`] || 0) + 1
  return Object.entries(counts).sort().map(([k, v]) => `${k}×${v}`).join(', ')
}

/** The allowed answers of each kind of call in the race. */
const RACE_ALLOWED = {
  pause: [204, 409], resume: [201, 409], connect: [200, 201], kill: [204],
  timeout: [204], refresh: [204], get: [200],
}

/** The race's calls: counts of each kind, shuffled. */
export function raceOps(id, counts) {
  const make = {
    pause: () => ['pause', 'POST', `/sandboxes/${id}/pause`, {}],
    resume: () => ['resume', 'POST', `/sandboxes/${id}/resume`, {}],
    connect: (i) => ['connect', 'POST', `${i % 2 ? '/v2' : ''}/sandboxes/${id}/connect`, { timeout: 300 }],
    kill: () => ['kill', 'DELETE', `/sandboxes/${id}`],
    timeout: () => ['timeout', 'POST', `/sandboxes/${id}/timeout`, { timeout: 600 }],
    refresh: () => ['refresh', 'POST', `/sandboxes/${id}/refreshes`, { duration: 600 }],
    get: () => ['get', 'GET', `/sandboxes/${id}`],
  }
  const ops = Object.entries(counts).flatMap(([k, n]) => Array.from({ length: n }, (_, i) => make[k](i)))
  for (let i = ops.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [ops[i], ops[j]] = [ops[j], ops[i]]
  }
  return ops
}

/** Checks each answer is allowed for its call (404 too when kills race) and none is a 5xx. */
export function checkRace(results, { killed }) {
  const bad = results.filter((r) => r.status >= 500)
  assert.deepEqual(bad, [], 'no 5xx')
  for (const r of results) {
    const allowed = killed ? [...RACE_ALLOWED[r.op], 404] : RACE_ALLOWED[r.op]
    assert.ok(allowed.includes(r.status), `${r.op}: ${r.status} ${r.text}`)
    if (r.status >= 400) assert.equal(r.json?.code, r.status, `${r.op}: error body ${r.text}`)
  }
  const n = (op, status) => results.filter((r) => r.op === op && r.status === status).length
  // Calls on one sandbox run one at a time: each successful pause is
  // followed by at most one successful resume (by resume or connect).
  const pauses = n('pause', 204)
  const resumes = n('resume', 201) + n('connect', 201)
  assert.ok(pauses - resumes === 0 || pauses - resumes === 1, `${pauses} pauses vs ${resumes} resumes`)
  return { pauses, resumes }
}
