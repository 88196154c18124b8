// End-to-end tests of volumes through the official npm `e2b` client: the Volume
// class (the /volumes routes and the content API it reaches at E2B_VOLUME_API_URL,
// which the server's client.env sets) and volumeMounts on create. Every sandbox and
// volume is removed at the end of its test.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { call, restartServer } from './lib/api.mjs'

const PKG = process.env.E2B_PACKAGE || 'e2b-2.51.0'
const { Sandbox, Volume, VolumeError, VolumeNotFoundError, VolumePathNotFoundError, CommandExitError, AuthenticationError } = await import(PKG)
const TEMPLATE = 'base'

/** A volume name unique to this run. */
const name = (what) => `e2e-${what}-${randomBytes(4).toString('hex')}`

/** Kills sandboxes, then destroys volumes, ignoring failures (for finally blocks). */
async function cleanup(sbxs, vols) {
  await Promise.all(sbxs.filter(Boolean).map((s) => Sandbox.kill(s.sandboxId ?? s).catch(() => {})))
  await Promise.all(vols.filter(Boolean).map((v) => Volume.destroy(v.volumeId ?? v).catch(() => {})))
}

/** Makes a volume of sizeMB through the API (the client's create sends a name only) and connects to it. */
async function sizedVolume(volName, sizeMB) {
  const res = await call('POST', '/volumes', { body: { name: volName, sizeMB } })
  assert.equal(res.status, 201, `POST /volumes: ${res.text}`)
  return Volume.connect(res.json.volumeID)
}

test('the Volume class: create, list, getInfo, connect; files and directories through the content API; destroy', { timeout: 120_000 }, async () => {
  assert.ok(process.env.E2B_VOLUME_API_URL, 'client.env sets E2B_VOLUME_API_URL')
  const vol = await Volume.create(name('api'))
  try {
    assert.match(vol.volumeId, /^[0-9a-f-]{36}$/)
    assert.ok(vol.token, 'the create answer carries a token')
    const listed = await Volume.list()
    assert.ok(listed.some((v) => v.volumeId === vol.volumeId && v.name === vol.name), 'Volume.list shows it')
    const info = await Volume.getInfo(vol.volumeId)
    assert.equal(info.name, vol.name)
    await assert.rejects(Volume.getInfo('6f1c3b2a-0000-4000-8000-000000000000'), VolumeNotFoundError)

    // Files in every format the client reads and writes.
    const written = await vol.writeFile('/hello.txt', 'Hello, volume!')
    assert.equal(written.type, 'file')
    assert.equal(written.path, '/hello.txt')
    assert.equal(written.size, 14)
    assert.equal(await vol.readFile('/hello.txt'), 'Hello, volume!')
    const bytes = new Uint8Array([0, 1, 2, 250, 255])
    await vol.writeFile('/bytes.bin', bytes.buffer)
    assert.deepEqual(await vol.readFile('/bytes.bin', { format: 'bytes' }), bytes)
    await vol.writeFile('/blob.txt', new Blob(['from a blob']))
    assert.equal(await (await vol.readFile('/blob.txt', { format: 'blob' })).text(), 'from a blob')
    const stream = await vol.readFile('/hello.txt', { format: 'stream' })
    assert.equal(await new Response(stream).text(), 'Hello, volume!')
    await vol.writeFile('/empty.txt', '')
    assert.equal(await vol.readFile('/empty.txt'), '')

    // Overwriting needs force; metadata is set as asked.
    await assert.rejects(vol.writeFile('/hello.txt', 'again'), (err) => err instanceof VolumeError && /409/.test(err.message))
    await vol.writeFile('/hello.txt', 'New content', { force: true })
    assert.equal(await vol.readFile('/hello.txt'), 'New content')
    await vol.writeFile('/owned.txt', 'x', { uid: 1000, gid: 1000, mode: 0o600 })
    const owned = await vol.getInfo('/owned.txt')
    assert.deepEqual([owned.uid, owned.gid, owned.mode, owned.type], [1000, 1000, 0o600, 'file'])
    assert.ok(owned.mtime instanceof Date && !Number.isNaN(owned.mtime.getTime()), 'mtime is a date')
    const updated = await vol.updateMetadata('/owned.txt', { uid: 1001, gid: 1001, mode: 0o755 })
    assert.deepEqual([updated.uid, updated.gid, updated.mode], [1001, 1001, 0o755])
    await assert.rejects(vol.updateMetadata('/missing.txt', { mode: 0o644 }), VolumePathNotFoundError)

    // Directories.
    await vol.makeDir('/nested/deep/path', { force: true })
    await vol.writeFile('/nested/deep/path/file.txt', 'nested')
    assert.equal(await vol.readFile('/nested/deep/path/file.txt'), 'nested')
    const dir = await vol.makeDir('/dir-with-metadata', { uid: 1000, gid: 1000, mode: 0o750 })
    assert.deepEqual([dir.type, dir.uid, dir.mode & 0o777], ['directory', 1000, 0o750])
    await assert.rejects(vol.makeDir('/no/parent'), VolumePathNotFoundError)
    const names = (await vol.list('/')).map((e) => e.name).sort()
    assert.deepEqual(names, ['blob.txt', 'bytes.bin', 'dir-with-metadata', 'empty.txt', 'hello.txt', 'nested', 'owned.txt'])
    const deep = (await vol.list('/nested', { depth: 3 })).map((e) => e.path)
    assert.deepEqual(deep, ['/nested/deep', '/nested/deep/path', '/nested/deep/path/file.txt'])
    await assert.rejects(vol.list('/non-existent'), VolumePathNotFoundError)

    // Existence and removal.
    assert.equal(await vol.exists('/hello.txt'), true)
    assert.equal(await vol.exists('/non-existent.txt'), false)
    await vol.remove('/nested')
    assert.equal(await vol.exists('/nested/deep'), false)
    await assert.rejects(vol.remove('/nested'), VolumePathNotFoundError)
    await assert.rejects(vol.readFile('/nested/deep/path/file.txt'), VolumePathNotFoundError)

    // Another token does not open it: a connect gets a fresh one that does.
    const again = await Volume.connect(vol.volumeId)
    assert.notEqual(again.token, vol.token)
    assert.equal(await again.readFile('/hello.txt'), 'New content')
    const forged = new Volume(vol.volumeId, vol.name, 'not-a-token', vol.domain)
    await assert.rejects(forged.readFile('/hello.txt'), (err) => err instanceof AuthenticationError, 'a forged token is a 401')
  } finally {
    assert.equal(await Volume.destroy(vol.volumeId), true, 'destroy answers true')
  }
  assert.equal(await Volume.destroy(vol.volumeId), false, 'a second destroy answers false')
  await assert.rejects(Volume.getInfo(vol.volumeId), VolumeNotFoundError)
})

test('a file written to a volume by one sandbox is read by another after the first is killed', { timeout: 180_000 }, async () => {
  const vol = await Volume.create(name('mount'))
  let writer, reader
  try {
    writer = await Sandbox.create(TEMPLATE, { volumeMounts: { '/mnt/data': vol }, timeoutMs: 120_000 })
    const info = await Sandbox.getInfo(writer.sandboxId)
    assert.deepEqual(info.volumeMounts, [{ name: vol.name, path: '/mnt/data' }], 'getInfo lists the mount')
    await writer.files.write('/mnt/data/hello.txt', 'written by the writer')
    const who = await writer.commands.run('stat -c %U /mnt/data/hello.txt; whoami')
    assert.equal(who.stdout, 'user\nuser\n', 'the default user wrote it, and owns it')
    await writer.kill()
    writer = null

    reader = await Sandbox.create(TEMPLATE, { volumeMounts: { '/data': vol.name }, timeoutMs: 120_000 })
    assert.equal(await reader.files.read('/data/hello.txt'), 'written by the writer')
    assert.equal(await vol.readFile('/hello.txt'), 'written by the writer', 'the content API sees it too')
    // And the other way: the content API writes, the sandbox reads at once.
    await vol.writeFile('/from-api.txt', 'from the API')
    assert.equal((await reader.commands.run('cat /data/from-api.txt')).stdout, 'from the API')
  } finally {
    await cleanup([writer, reader], [vol])
  }
})

test('two sandboxes mount one volume at once and see each other\'s writes', { timeout: 180_000 }, async () => {
  const vol = await Volume.create(name('shared'))
  let a, b
  try {
    ;[a, b] = await Promise.all([
      Sandbox.create(TEMPLATE, { volumeMounts: { '/shared': vol }, timeoutMs: 120_000 }),
      Sandbox.create(TEMPLATE, { volumeMounts: { '/shared': vol }, timeoutMs: 120_000 }),
    ])
    await a.commands.run('echo from-a > /shared/a')
    assert.equal((await b.commands.run('cat /shared/a')).stdout, 'from-a\n')
    await b.commands.run('echo from-b >> /shared/a')
    assert.equal((await a.commands.run('cat /shared/a')).stdout, 'from-a\nfrom-b\n')
    // A mounted volume cannot be destroyed.
    await assert.rejects(Volume.destroy(vol.volumeId), (err) => err instanceof VolumeError && /409/.test(err.message))
  } finally {
    await cleanup([a, b], [vol])
  }
})

test('ENOSPC past the volume quota, inside the sandbox and through the content API', { timeout: 180_000 }, async () => {
  const vol = await sizedVolume(name('quota'), 64)
  let sbx
  try {
    sbx = await Sandbox.create(TEMPLATE, { volumeMounts: { '/mnt/small': vol }, timeoutMs: 120_000 })
    await assert.rejects(sbx.commands.run('dd if=/dev/zero of=/mnt/small/big bs=1M count=128'), (err) => {
      assert.ok(err instanceof CommandExitError, `a CommandExitError, got ${err?.name}`)
      assert.notEqual(err.exitCode, 0)
      assert.match(err.stderr, /No space left on device/)
      return true
    })
    const df = await sbx.commands.run("df -m /mnt/small | awk 'NR==2 {print $2}'")
    assert.ok(Number(df.stdout) <= 64, `the mount is the volume's 64 MiB, df says ${df.stdout}`)
    await sbx.commands.run('rm /mnt/small/big')
    // The content API is bounded by the same size: 507, and nothing of the file is left.
    await assert.rejects(vol.writeFile('/huge.bin', new Uint8Array(96 << 20).buffer), (err) => err instanceof VolumeError && /507/.test(err.message))
    assert.equal(await vol.exists('/huge.bin'), false)
    await vol.writeFile('/fits.txt', 'still fits')
    assert.equal((await sbx.commands.run('cat /mnt/small/fits.txt')).stdout, 'still fits')
  } finally {
    await cleanup([sbx], [vol])
  }
})

test('a volume and its mount survive pause and resume and a server restart', { timeout: 300_000 }, async () => {
  const vol = await Volume.create(name('durable'))
  let sbx
  try {
    sbx = await Sandbox.create(TEMPLATE, { volumeMounts: { '/mnt/data': vol }, timeoutMs: 240_000 })
    await sbx.files.write('/mnt/data/before-pause.txt', 'before')
    assert.equal(await sbx.pause(), true)
    await assert.rejects(Volume.destroy(vol.volumeId), (err) => err instanceof VolumeError && /409/.test(err.message),
      'a paused sandbox keeps its volume')
    await vol.writeFile('/while-paused.txt', 'while paused')
    await sbx.connect()
    assert.equal(await sbx.files.read('/mnt/data/before-pause.txt'), 'before')
    assert.equal(await sbx.files.read('/mnt/data/while-paused.txt'), 'while paused')
    await sbx.files.write('/mnt/data/after-resume.txt', 'after')

    await restartServer()
    const again = await Volume.connect(vol.volumeId)
    assert.equal(await again.readFile('/after-resume.txt'), 'after', 'the content is there after a restart')
    assert.equal(await sbx.files.read('/mnt/data/before-pause.txt'), 'before', 'the running sandbox still has its mount')
    await sbx.files.write('/mnt/data/after-restart.txt', 'restart')
    assert.equal(await again.readFile('/after-restart.txt'), 'restart')
    // After the restart, a pause and resume keep the mount too.
    assert.equal(await sbx.pause(), true)
    await sbx.connect()
    assert.equal(await sbx.files.read('/mnt/data/after-restart.txt'), 'restart')
    await sbx.files.write('/mnt/data/last.txt', 'last')
    assert.equal(await again.readFile('/last.txt'), 'last')
  } finally {
    await cleanup([sbx], [vol])
  }
})

test('a fork mounts its source\'s volumes; each sees the other\'s writes', { timeout: 180_000 }, async () => {
  const vol = await Volume.create(name('fork'))
  let sbx, child
  try {
    sbx = await Sandbox.create(TEMPLATE, { volumeMounts: { '/mnt/data': vol }, timeoutMs: 120_000 })
    await sbx.files.write('/mnt/data/from-source.txt', 'source')
    ;[child] = await sbx.fork()
    assert.equal(await child.files.read('/mnt/data/from-source.txt'), 'source', 'the fork mounts the volume')
    const info = await Sandbox.getInfo(child.sandboxId)
    assert.deepEqual(info.volumeMounts, [{ name: vol.name, path: '/mnt/data' }], 'the fork lists the mount')
    await child.files.write('/mnt/data/from-fork.txt', 'fork')
    assert.equal(await sbx.files.read('/mnt/data/from-fork.txt'), 'fork', 'the source sees the fork\'s write')
    await assert.rejects(Volume.destroy(vol.volumeId), (err) => err instanceof VolumeError && /409/.test(err.message),
      'the fork keeps the volume too')
  } finally {
    await cleanup([sbx, child], [vol])
  }
})

test('bad volumeMounts are refused with the field named; another team\'s volumes stay out of sight', { timeout: 60_000 }, async () => {
  await assert.rejects(Sandbox.create(TEMPLATE, { volumeMounts: { '/mnt/x': 'no-such-volume' } }),
    (err) => /invalid mounts/.test(err.message) && /volume 'no-such-volume' not found/.test(err.message))
  const vol = await Volume.create(name('bad'))
  try {
    await assert.rejects(Sandbox.create(TEMPLATE, { volumeMounts: { 'relative': vol } }), /path must be absolute/)
    await assert.rejects(Sandbox.create(TEMPLATE, { volumeMounts: { '/proc': vol } }), /is reserved/)
    await assert.rejects(Volume.create(vol.name), (err) => err instanceof VolumeError && /already exists/.test(err.message))
  } finally {
    await cleanup([], [vol])
  }
})
