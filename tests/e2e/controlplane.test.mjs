// End-to-end tests of the control plane through the official npm `e2b` client.
// tests/e2e/run.sh starts the server; E2B_PACKAGE picks the client version.
import { test } from 'node:test'
import assert from 'node:assert/strict'

const { Sandbox } = await import(process.env.E2B_PACKAGE || 'e2b-2.51.0')

test('create, run a command, kill', { timeout: 60_000 }, async () => {
  const sbx = await Sandbox.create('base', { envs: { LELANTOS_E2E: 'yes' } })
  const r = await sbx.commands.run('echo $LELANTOS_E2E')
  assert.equal(r.stdout.trim(), 'yes')
  assert.equal(await sbx.kill(), true)
  assert.equal(await Sandbox.kill(sbx.sandboxId), false)
})
