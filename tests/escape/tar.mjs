// A minimal ustar writer for the suite's hostile build contexts and layers: any
// name (absolute, with "..", very long is not needed), any entry type.

/** Entry types of a tar header. */
export const TYPE = { file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6' }

function octal(n, width) {
  return n.toString(8).padStart(width - 1, '0') + '\0'
}

function header({ name, type = TYPE.file, size = 0, mode = 0o644, linkname = '', devmajor = 0, devminor = 0 }) {
  const h = Buffer.alloc(512)
  h.write(name.slice(0, 100), 0, 'utf8')
  h.write(octal(mode, 8), 100)
  h.write(octal(0, 8), 108)
  h.write(octal(0, 8), 116)
  h.write(octal(size, 12), 124)
  h.write(octal(Math.floor(Date.now() / 1000), 12), 136)
  h.write('        ', 148)
  h.write(type, 156)
  h.write(linkname.slice(0, 100), 157)
  h.write('ustar\0', 257)
  h.write('00', 263)
  h.write(octal(devmajor, 8), 329)
  h.write(octal(devminor, 8), 337)
  let sum = 0
  for (const b of h) sum += b
  h.write(octal(sum, 7) + ' ', 148)
  return h
}

/** Builds a tar archive from entries {name, type?, body?, mode?, linkname?, devmajor?, devminor?}. */
export function tar(entries) {
  const parts = []
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '')
    parts.push(header({ ...e, size: e.type && e.type !== TYPE.file ? 0 : body.length }))
    if (!e.type || e.type === TYPE.file) {
      parts.push(body, Buffer.alloc((512 - (body.length % 512)) % 512))
    }
  }
  parts.push(Buffer.alloc(1024))
  return Buffer.concat(parts)
}
