// Path traversal through the daemon's file routes: as `user`, no path, symlink or
// hard link reaches a file only root may read or write.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CLASSES, sandbox, sh } from './lib.mjs'

for (const rc of CLASSES) {
  test(`${rc}: user cannot read or write root's files through /files`, { timeout: 180_000 }, async (t) => {
    const sbx = await sandbox(t, rc)
    await sh(sbx, 'echo root-only-secret > /root/secret && chmod 600 /root/secret && cp /etc/shadow /root/shadow.bak')
    // Links that user may make pointing at root's files.
    await sh(sbx, 'ln -sf /root/secret /home/user/link && ln -sf /etc/shadow /home/user/shadow-link && mkdir -p /home/user/d && ln -sfn /root /home/user/d/rootdir', { user: 'user' })
    const reads = ['/root/secret', '/etc/shadow', '../../root/secret', '/home/user/../../root/secret',
      '/home/user/link', '/home/user/shadow-link', '/home/user/d/rootdir/secret', '/proc/1/root/root/secret',
      '/proc/self/root/root/secret', '//root//secret', '/root/./secret']
    for (const p of reads) {
      const got = await sbx.files.read(p, { user: 'user' }).then((c) => c, (e) => `refused: ${e.message}`)
      assert.doesNotMatch(String(got), /root-only-secret|root:[^:]*:\d/, `user read ${p}: ${got}`)
    }
    const writes = ['/root/secret', '/etc/passwd', '/home/user/link', '/home/user/d/rootdir/planted', '/etc/sudoers.d/pwn']
    for (const p of writes) {
      await sbx.files.write(p, 'written-by-user', { user: 'user' }).catch(() => {})
    }
    const after = await sh(sbx, 'cat /root/secret; grep -c written-by-user /etc/passwd; ls /root /etc/sudoers.d')
    assert.match(after.stdout, /^root-only-secret/, 'root\'s file was overwritten')
    assert.match(after.stdout, /^0$/m, '/etc/passwd was written')
    assert.doesNotMatch(after.stdout, /planted|pwn/, 'a file was planted in a root-only directory')
    for (const [from, to] of [['/root/secret', '/home/user/stolen'], ['/home/user/link', '/home/user/stolen2']]) {
      await sbx.files.rename(from, to, { user: 'user' }).catch(() => {})
    }
    // A moved link of user's own is fine; a regular file with root's content is not.
    const stolen = await sh(sbx, 'for f in /home/user/stolen /home/user/stolen2; do [ -L $f ] || cat $f 2>/dev/null; done; test -e /root/secret && echo still-there')
    assert.doesNotMatch(stolen.stdout, /root-only-secret/)
    assert.match(stolen.stdout, /still-there/)
    await sbx.files.remove('/root/secret', { user: 'user' }).catch(() => {})
    assert.match((await sh(sbx, 'test -e /root/secret && echo kept')).stdout, /kept/, 'user removed root\'s file')
    const listed = await sbx.files.list('/root', { user: 'user' }).then((l) => l.map((e) => e.name), () => [])
    assert.ok(!listed.includes('secret'), 'user listed /root')
  })
}

test('a symlink swapped in during many requests never lets user read root\'s file', { timeout: 240_000 }, async (t) => {
  const sbx = await sandbox(t)
  await sh(sbx, 'echo root-only-secret > /root/secret && chmod 600 /root/secret')
  await sh(sbx, 'echo harmless > /home/user/plain', { user: 'user' })
  // A racer flips /home/user/x between a file of user's and a link to root's file.
  await sbx.commands.run('cd /home/user && while true; do ln -sf plain x; ln -sf /root/secret x; done', { background: true, user: 'user' })
  let leaks = 0
  const reads = []
  for (let i = 0; i < 200; i++) {
    reads.push(sbx.files.read('/home/user/x', { user: 'user' }).then((c) => { if (/root-only-secret/.test(c)) leaks++ }, () => {}))
    if (reads.length >= 8) await Promise.all(reads.splice(0))
  }
  await Promise.all(reads)
  assert.equal(leaks, 0, `user read root's file ${leaks} times through the swapped link`)
})
