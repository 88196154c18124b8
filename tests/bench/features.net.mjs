// The "remote" test network for the egress measurement: the e2e egress suite's
// stand-in for the internet (tests/e2e/lib/remote.mjs), a network namespace with
// its own DNS server and an HTTP server on port 80 that also serves GET /bytes/N.
//   node features.net.mjs X OUT_FILE
// makes it for x (the second byte of the server's subnet), writes its DNS server,
// a name it resolves and an address outside that name to OUT_FILE as JSON, and
// removes it all again on SIGTERM or SIGINT.
import { writeFileSync } from 'node:fs'
import { startInternet } from '../e2e/lib/remote.mjs'

const [x, outFile] = [Number(process.argv[2]), process.argv[3]]
if (!Number.isInteger(x) || x < 0 || x > 255 || !outFile) {
  console.error('usage: node features.net.mjs X OUT_FILE (X: 0..255)')
  process.exit(2)
}
const net = await startInternet(x)
const stop = () => {
  net.stop()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
writeFileSync(outFile, JSON.stringify({ dns: net.dns, name: 'allowed.e2e.test', address: net.allowed, other: net.denied }))
setInterval(() => {}, 1 << 30)
