// End-to-end tests of the code interpreter with the real npm @e2b/code-interpreter
// client (2.8.0) against the built-in code-interpreter-v1 template, which the
// server builds at start (this suite waits for that build). Each test is one point
// of the contract: state across calls, errors, charts, DataFrames, streaming, env
// vars, contexts, timeouts, languages, pause and resume. run.sh runs it once.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { call, eventually, sleep } from './lib/api.mjs'

const { Sandbox } = await import('code-interpreter-2.8.0')
const TEMPLATE = 'code-interpreter-v1'

let sbx

/** The built-in template as the API lists it. */
async function templateInfo() {
  const r = await call('GET', '/templates')
  return (r.json || []).find((x) => x.templateID === TEMPLATE)
}

/**
 * Waits until the server's first build of the template is done; while it builds,
 * a create is refused with a clear 4xx saying so.
 */
async function templateReady() {
  const first = await templateInfo()
  assert.ok(first, `${TEMPLATE} is listed from the server's start`)
  assert.equal(first.public, true)
  if (first.buildStatus === 'building') {
    await assert.rejects(Sandbox.create({ timeoutMs: 60_000 }), (e) => /400/.test(e.message) && /not ready \(status building\)/.test(e.message))
  }
  const res = await eventually(async () => {
    const t = await templateInfo()
    return t && t.buildStatus !== 'building' ? t : null
  }, 900_000, `the ${TEMPLATE} template's build`, 2_000)
  assert.equal(res.buildStatus, 'ready', `${TEMPLATE} build: ${JSON.stringify(res)}`)
}

before(async () => {
  await templateReady()
  sbx = await Sandbox.create({ timeoutMs: 600_000, metadata: { suite: 'codeinterpreter' } })
}, { timeout: 960_000 })

after(async () => {
  await sbx?.kill()
})

test('a create restores a ready interpreter: the first run needs no kernel start', async () => {
  const fresh = await Sandbox.create({ timeoutMs: 120_000 })
  try {
    const start = Date.now()
    const exec = await fresh.runCode('1+1')
    assert.equal(exec.text, '2')
    assert.ok(Date.now() - start < 5_000, `first runCode took ${Date.now() - start} ms`)
    const ctxs = await fresh.listCodeContexts()
    assert.deepEqual(ctxs.map((c) => c.language).slice(0, 2), ['python', 'javascript'])
  } finally {
    await fresh.kill()
  }
})

test('state lasts across calls, with stdout, the main result and the execution count', async () => {
  const ctx = await sbx.createCodeContext()
  const first = await sbx.runCode('x = 41\nprint("hi")', { context: ctx })
  assert.deepEqual(first.logs.stdout, ['hi\n'])
  assert.equal(first.results.length, 0)
  const second = await sbx.runCode('x + 1', { context: ctx })
  assert.equal(second.text, '42')
  assert.equal(second.executionCount, 2)
  assert.equal(second.results[0].isMainResult, true)
  const quoted = await sbx.runCode("'bar'", { context: ctx })
  assert.equal(quoted.text, 'bar')
  const pwd = await sbx.runCode('!pwd', { context: ctx })
  assert.deepEqual(pwd.logs.stdout, ['/home/user\n'])
  await sbx.removeCodeContext(ctx) // kernels hold memory: the suite removes what it makes
})

test('an error comes with its name, value and a plain-text traceback', async () => {
  const exec = await sbx.runCode('def f():\n    return xyz\nf()')
  assert.equal(exec.error.name, 'NameError')
  assert.equal(exec.error.value, "name 'xyz' is not defined")
  assert.match(exec.error.traceback, /return xyz/)
  assert.doesNotMatch(exec.error.traceback, /\x1b\[/)
  const after = await sbx.runCode('1')
  assert.equal(after.error, undefined)
})

test('a matplotlib bar chart gives a png and its chart elements', async () => {
  const exec = await sbx.runCode(`
import matplotlib.pyplot as plt
authors = ['Author A', 'Author B', 'Author C', 'Author D']
sales = [100, 200, 300, 400]
plt.figure(figsize=(10, 6))
plt.bar(authors, sales, label='Books Sold', color='blue')
plt.xlabel('Authors')
plt.ylabel('Number of Books Sold (copies)')
plt.title('Book Sales by Authors')
plt.show()
`)
  assert.equal(exec.error, undefined, JSON.stringify(exec.error))
  const r = exec.results[0]
  assert.ok(r.png && Buffer.from(r.png, 'base64').subarray(1, 4).toString() === 'PNG', 'a PNG image')
  assert.deepEqual(r.extra, {})
  assert.equal(r.isMainResult, false)
  const c = r.chart
  assert.equal(c.type, 'bar')
  assert.equal(c.title, 'Book Sales by Authors')
  assert.equal(c.x_label, 'Authors')
  assert.equal(c.y_label, 'Number of Books Sold (copies)')
  assert.equal(c.y_unit, 'copies')
  assert.deepEqual(c.elements.map((e) => [e.label, e.group, e.value]),
    [['Author A', 'Books Sold', 100], ['Author B', 'Books Sold', 200], ['Author C', 'Books Sold', 300], ['Author D', 'Books Sold', 400]])
})

test('pie, box and line charts are classified with their numbers', async () => {
  const pie = await sbx.runCode(`
import matplotlib.pyplot as plt
plt.pie([90, 10], labels=['big', 'small'])
plt.title('Shares')
plt.show()`)
  assert.equal(pie.results[0].chart.type, 'pie')
  assert.deepEqual(pie.results[0].chart.elements.map((e) => [e.label, Math.round(e.angle)]), [['big', 324], ['small', 36]])
  const box = await sbx.runCode(`
import matplotlib.pyplot as plt
data = {'Class A': [85, 90, 78, 92, 88], 'Class B': [95, 89, 76, 91, 84, 87], 'Class C': [75, 82, 88, 79, 86]}
fig, ax = plt.subplots()
ax.boxplot(list(data.values()), labels=list(data.keys()), patch_artist=True)
ax.set_xlabel('Class'); ax.set_ylabel('Score'); ax.set_title('Exam Scores')
plt.show()`)
  const bc = box.results[0].chart
  assert.equal(bc.type, 'box_and_whisker')
  assert.deepEqual(bc.elements.map((e) => e.label), ['Class A', 'Class B', 'Class C'])
  assert.deepEqual(bc.elements.map((e) => e.first_quartile), [85, 84.75, 79])
  assert.deepEqual(bc.elements.map((e) => e.median), [88, 88, 82])
  const line = await sbx.runCode(`
import matplotlib.pyplot as plt
plt.plot([1, 2, 3], [2, 4, 8], label='growth')
plt.title('Line'); plt.xlabel('t [s]')
plt.show()`)
  const lc = line.results[0].chart
  assert.equal(lc.type, 'line')
  assert.equal(lc.x_unit, 's')
  assert.deepEqual(lc.elements, [{ label: 'growth', points: [[1, 2], [2, 4], [3, 8]] }])
  const both = await sbx.runCode(`
import matplotlib.pyplot as plt
fig, (a, b) = plt.subplots(1, 2)
a.scatter([1, 2], [3, 4], label='pts')
b.bar(['x', 'y'], [5, 6])
fig.suptitle('Both')
plt.show()`)
  const sc = both.results[0].chart
  assert.equal(sc.type, 'superchart')
  assert.equal(sc.title, 'Both')
  assert.deepEqual(sc.elements.map((e) => e.type), ['scatter', 'bar'])
  assert.deepEqual(sc.elements[0].elements, [{ label: 'pts', points: [[1, 3], [2, 4]] }])
  assert.deepEqual(sc.elements[1].elements.map((e) => [e.label, e.value]), [['x', 5], ['y', 6]])
})

test('a DataFrame gives html, text and data, and display() results come beside the main one', async () => {
  const exec = await sbx.runCode(`
import pandas as pd
from IPython.display import display
display('shown first')
pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})`)
  assert.equal(exec.results.length, 2)
  assert.equal(exec.results[0].text, 'shown first')
  assert.equal(exec.results[0].isMainResult, false)
  const df = exec.results[1]
  assert.equal(df.isMainResult, true)
  assert.match(df.html, /<table/)
  assert.match(df.text, /a\s+b/)
  assert.deepEqual(df.data, { a: [1, 2], b: ['x', 'y'] })
})

test('a PIL image gives a png', async () => {
  const exec = await sbx.runCode(`
from PIL import Image
Image.new('RGB', (8, 8), 'red')`)
  assert.ok(exec.results[0].png, JSON.stringify(exec.results[0]))
})

test('streaming callbacks fire while a 3 s loop runs', async () => {
  const seen = []
  const start = Date.now()
  const exec = await sbx.runCode('import time, sys\nfor i in range(3):\n    print(i, flush=True)\n    print("e", i, file=sys.stderr, flush=True)\n    time.sleep(1)\n"done"', {
    onStdout: (m) => seen.push(['out', m.line, Date.now() - start]),
    onStderr: (m) => seen.push(['err', m.line, Date.now() - start]),
    onResult: (r) => seen.push(['result', r.text, Date.now() - start]),
  })
  assert.equal(exec.text, 'done')
  const outs = seen.filter((s) => s[0] === 'out')
  assert.deepEqual(outs.map((s) => s[1]), ['0\n', '1\n', '2\n'])
  assert.ok(outs[0][2] < outs[2][2] - 1500, `the lines came as they were printed: ${JSON.stringify(seen)}`)
  assert.equal(seen.filter((s) => s[0] === 'err').length, 3)
  assert.equal(seen.at(-1)[0], 'result')
})

test('env vars: per run, then gone; sandbox envs in every context, overridden once', async () => {
  const s = await Sandbox.create({ timeoutMs: 120_000, envs: { SANDBOX_VAR: 'create' } })
  try {
    const once = await s.runCode('import os; os.environ.get("FOO")', { envs: { FOO: 'bar' } })
    assert.equal(once.text, 'bar')
    const gone = await s.runCode('import os; str(os.environ.get("FOO"))')
    assert.equal(gone.text, 'None')
    assert.equal((await s.runCode('import os; os.environ["SANDBOX_VAR"]')).text, 'create')
    assert.equal((await s.runCode('import os; os.environ["SANDBOX_VAR"]', { envs: { SANDBOX_VAR: 'run' } })).text, 'run')
    assert.equal((await s.runCode('import os; os.environ["SANDBOX_VAR"]')).text, 'create')
    assert.equal((await s.runCode('process.env.SANDBOX_VAR', { language: 'js' })).text, 'create')
    assert.equal((await s.runCode('process.env.FOO', { language: 'js', envs: { FOO: 'js-run' } })).text, 'js-run')
  } finally {
    await s.kill()
  }
})

test('sandbox envs are there for the first cell, and for the next after a first one that does not compile', async () => {
  const first = await Sandbox.create({ timeoutMs: 120_000, envs: { SANDBOX_VAR: 'first' } })
  const broken = await Sandbox.create({ timeoutMs: 120_000, envs: { SANDBOX_VAR: 'after' } })
  try {
    const seen = await first.runCode('import os; os.environ["SANDBOX_VAR"]')
    assert.equal(seen.text, 'first')
    assert.equal(seen.executionCount, 1, 'the first cell is execution 1')
    const bad = await broken.runCode('def (:')
    assert.equal(bad.error?.name, 'SyntaxError')
    assert.equal((await broken.runCode('import os; os.environ["SANDBOX_VAR"]')).text, 'after')
    assert.equal((await broken.runCode('[k for k in dir() if "lelantos" in k.lower()]')).text, '[]', 'no helper name in the namespace')
  } finally {
    await first.kill()
    await broken.kill()
  }
})

test('two contexts in different languages keep separate state', async () => {
  const py = await sbx.createCodeContext({ language: 'python' })
  const js = await sbx.createCodeContext({ language: 'js', cwd: '/tmp' })
  assert.equal(js.language, 'javascript')
  assert.equal(js.cwd, '/tmp')
  await sbx.runCode('shared = "python"', { context: py })
  await sbx.runCode('globalThis.shared = "javascript"', { context: js })
  assert.equal((await sbx.runCode('shared', { context: py })).text, 'python')
  assert.equal((await sbx.runCode('shared', { context: js })).text, 'javascript')
  assert.equal((await sbx.runCode('process.cwd()', { context: js })).text, '/tmp')
  const listed = await sbx.listCodeContexts()
  assert.deepEqual(listed.slice(-2).map((c) => c.id), [py.id, js.id])
  await sbx.removeCodeContext(py)
  await sbx.removeCodeContext(js.id)
})

test('JavaScript and TypeScript: ESM import, top-level await, console.log, type annotations', async () => {
  const exec = await sbx.runCode(`import fs from 'fs'
console.log('exists', fs.existsSync('/home/user'))
const m: string = 'typed'
await Promise.resolve(m + '!')`, { language: 'ts' })
  assert.equal(exec.error, undefined, JSON.stringify(exec.error))
  assert.deepEqual(exec.logs.stdout, ['exists true\n'])
  assert.equal(exec.text, 'typed!')
  const err = await sbx.runCode('throw new Error("boom")', { language: 'javascript' })
  assert.match(err.error.value, /boom/)
})

test('each of 20 JavaScript cells in a row has its own output and result', async () => {
  // Deno's kernel publishes output from a queue that can lag behind the end of
  // its cell: each cell must still get its own, and none of the next one's.
  for (let i = 0; i < 20; i++) {
    const exec = await sbx.runCode(`console.log('cell', ${i})\nawait Promise.resolve(${i} * 2)`, { language: 'js' })
    assert.deepEqual(exec.logs.stdout, [`cell ${i}\n`], `cell ${i}`)
    assert.equal(exec.text, String(i * 2), `cell ${i}: ${JSON.stringify(exec)}`)
  }
})

test('bash and R contexts run their languages', async () => {
  const bash = await sbx.runCode('X=5; echo "x=$X"; cd /tmp', { language: 'bash' })
  assert.deepEqual(bash.logs.stdout, ['x=5\n'])
  assert.deepEqual((await sbx.runCode('echo "$X $(pwd)"', { language: 'bash' })).logs.stdout, ['5 /tmp\n'])
  const failed = await sbx.runCode('false', { language: 'bash' })
  assert.ok(failed.error, 'a non-zero status is an error')
  const r = await sbx.runCode('x <- c(1, 2, 3)\nsum(x)', { language: 'r' })
  assert.equal(r.error, undefined, JSON.stringify(r.error))
  // IRkernel sends values as display data, so they are not the main result.
  assert.equal(r.results[0].text, '[1] 6')
})

test('restart clears the state and keeps the id; remove drops the context', async () => {
  const ctx = await sbx.createCodeContext()
  await sbx.runCode('kept = 1', { context: ctx })
  await sbx.restartCodeContext(ctx)
  const after = await sbx.runCode('kept', { context: ctx })
  assert.equal(after.error.name, 'NameError')
  assert.ok((await sbx.listCodeContexts()).some((c) => c.id === ctx.id))
  await sbx.removeCodeContext(ctx)
  assert.ok(!(await sbx.listCodeContexts()).some((c) => c.id === ctx.id))
  await assert.rejects(sbx.runCode('1', { context: ctx }), (e) => e.name === 'NotFoundError' && e.message.includes(ctx.id))
})

test('a timed-out run is interrupted: the next run answers within seconds', async () => {
  const ctx = await sbx.createCodeContext()
  await assert.rejects(sbx.runCode('import time; time.sleep(300)', { context: ctx, timeoutMs: 3_000 }),
    (e) => e.name === 'TimeoutError')
  await sleep(5_000)
  const start = Date.now()
  const exec = await sbx.runCode('1 + 1', { context: ctx, timeoutMs: 10_000 })
  assert.equal(exec.text, '2')
  assert.ok(Date.now() - start < 10_000)
  // A busy loop in JavaScript is interrupted and the kernel keeps its state.
  const js = await sbx.createCodeContext({ language: 'js' })
  await sbx.runCode('globalThis.kept = 5', { context: js })
  await assert.rejects(sbx.runCode('while (true) {}', { context: js, timeoutMs: 3_000 }), (e) => e.name === 'TimeoutError')
  await sleep(2_000)
  assert.equal((await sbx.runCode('kept', { context: js, timeoutMs: 10_000 })).text, '5')
  await sbx.removeCodeContext(ctx)
  await sbx.removeCodeContext(js)
})

test('an unknown language is a clear error; context and language together are refused', async () => {
  await assert.rejects(sbx.runCode('1', { language: 'cobol' }), (e) => e.name === 'NotFoundError' && /cobol/.test(e.message))
  await assert.rejects(sbx.createCodeContext({ language: 'cobol' }), (e) => /cobol/.test(e.message))
  const ctx = await sbx.createCodeContext()
  await assert.rejects(sbx.runCode('1', { context: ctx, language: 'python' }), (e) => e.name === 'InvalidArgumentError')
  await sbx.removeCodeContext(ctx)
})

test('/execute checks the access token with envd', async () => {
  const secure = await Sandbox.create({ timeoutMs: 120_000, secure: true })
  try {
    const r = await secure.commands.run('curl -s -o /dev/null -w "%{http_code}" -X POST -H "Content-Type: application/json" ' +
      "-H 'X-Access-Token: wrong' -d '{\"code\":\"1\"}' http://127.0.0.1:49999/execute")
    assert.equal(r.stdout, '401')
    assert.equal((await secure.runCode('6 * 7')).text, '42')
  } finally {
    await secure.kill()
  }
})

test('pause and resume keep a kernel variable', async () => {
  const s = await Sandbox.create({ timeoutMs: 300_000 })
  try {
    await s.runCode('survivor = "kept across pause"')
    await s.runCode('globalThis.jsSurvivor = 7', { language: 'js' })
    assert.equal(await s.pause(), true)
    const back = await Sandbox.connect(s.sandboxId)
    assert.equal((await back.runCode('survivor')).text, 'kept across pause')
    assert.equal((await back.runCode('jsSurvivor', { language: 'js' })).text, '7')
  } finally {
    await s.kill()
  }
})

test('a killed server is started again, and the kernels it left are reaped', async () => {
  const s = await Sandbox.create({ timeoutMs: 120_000 })
  try {
    await s.commands.run("kill -9 $(pgrep -f '^/lelantos/interpreter serve')", { user: 'root' })
    const exec = await eventually(async () => s.runCode('1 + 1', { requestTimeoutMs: 5_000 }).catch(() => null), 30_000, 'the server back', 500)
    assert.equal(exec.text, '2')
    const kernels = await s.commands.run("pgrep -c -f 'ipykernel_launcher|deno jupyter'", { user: 'root' })
    assert.equal(kernels.stdout.trim(), '2', 'the new default contexts only')
  } finally {
    await s.kill()
  }
})

test('a sandbox killed during a run ends the stream as the client expects', async () => {
  const s = await Sandbox.create({ timeoutMs: 120_000 })
  // The outcome is captured at once: the stream may end while kill is still
  // in flight, and a rejection nobody listens to yet fails the whole file.
  const outcome = s.runCode('import time; time.sleep(60)', { timeoutMs: 30_000 })
    .then(() => null, (e) => e)
  await sleep(1_500)
  await s.kill()
  const err = await outcome
  assert.ok(err, 'the run must fail once its sandbox is killed')
  assert.ok(err.name === 'TimeoutError' || err.name === 'SandboxError', `unexpected error ${err.name}: ${err.message}`)
})
