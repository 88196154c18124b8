// A small image in the suite's registry for the Dockerfiles of `e2b template
// create` to start from (the host reaches no public registry): bash and a few
// coreutils taken from the base template's tree with the libraries ldd finds,
// /bin/sh, and a passwd with root and user. It is pushed with the registry's
// HTTP API (distribution's /v2/ routes) as an OCI image of one gzipped layer.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chownSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { gzipSync } from 'node:zlib'

/** The programs of the image, all under /bin. */
const PROGRAMS = ['bash', 'cat', 'sleep', 'id', 'ls']

/** A sandbox user's ids, as E2B's images have them. */
const USER_ID = 1000

const sha256 = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`

/** The shared libraries ldd finds for a program of the base tree, as absolute paths. */
function libraries(program) {
  const out = execFileSync('ldd', [program], { encoding: 'utf8' })
  const libs = []
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/)
    if (f.length >= 3 && f[1] === '=>' && f[2].startsWith('/')) libs.push(f[2])
    else if (f[0]?.startsWith('/')) libs.push(f[0])
  }
  return libs
}

/** Builds the image's tree from base (the base template's root) and returns its layer, a tar archive. */
function layer(base) {
  const dir = mkdtempSync(join(tmpdir(), 'lelantos-e2bcli-image-'))
  try {
    for (const d of ['bin', 'etc', 'tmp', 'root', 'home/user']) mkdirSync(join(dir, d), { recursive: true })
    chownSync(join(dir, 'home/user'), USER_ID, USER_ID)
    writeFileSync(join(dir, 'etc/passwd'), `root:x:0:0:root:/root:/bin/bash\nuser:x:${USER_ID}:${USER_ID}::/home/user:/bin/bash\n`)
    writeFileSync(join(dir, 'etc/group'), `root:x:0:\nuser:x:${USER_ID}:\n`)
    symlinkSync('bash', join(dir, 'bin/sh'))
    const files = new Set()
    for (const p of PROGRAMS) {
      const from = join(base, 'usr/bin', p)
      copyFileSync(from, join(dir, 'bin', p))
      for (const lib of libraries(from)) files.add(lib)
    }
    for (const lib of files) {
      mkdirSync(join(dir, dirname(lib)), { recursive: true })
      copyFileSync(join(base, lib), join(dir, lib))
    }
    execFileSync('chmod', ['1777', join(dir, 'tmp')])
    return execFileSync('tar', ['--numeric-owner', '--sort=name', '-C', dir, '-cf', '-', '.'], { maxBuffer: 256 << 20 })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Uploads a blob to repo of the registry at addr (host:port). */
async function pushBlob(addr, repo, data) {
  const digest = sha256(data)
  const start = await fetch(`http://${addr}/v2/${repo}/blobs/uploads/`, { method: 'POST' })
  assert.equal(start.status, 202, `start an upload: ${start.status} ${await start.text()}`)
  const url = new URL(start.headers.get('location'), `http://${addr}`)
  url.searchParams.set('digest', digest)
  const put = await fetch(url, { method: 'PUT', headers: { 'Content-Type': 'application/octet-stream' }, body: data })
  assert.equal(put.status, 201, `upload ${digest}: ${put.status} ${await put.text()}`)
  return { digest, size: data.length }
}

/**
 * Pushes the image as repo:tag to the registry at addr, from the base tree
 * at base, and returns its reference (addr/repo:tag) for a FROM line.
 */
export async function pushBashImage(addr, base, repo = 'e2bcli/bash', tag = '1') {
  const tar = layer(base)
  const gz = gzipSync(tar)
  const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch] ?? process.arch
  const config = Buffer.from(JSON.stringify({
    architecture: arch, os: 'linux',
    config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
  }))
  const l = await pushBlob(addr, repo, gz)
  const c = await pushBlob(addr, repo, config)
  const manifest = {
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...c },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l }],
  }
  const res = await fetch(`http://${addr}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT', headers: { 'Content-Type': manifest.mediaType }, body: JSON.stringify(manifest),
  })
  assert.equal(res.status, 201, `push the manifest: ${res.status} ${await res.text()}`)
  return `${addr}/${repo}:${tag}`
}
