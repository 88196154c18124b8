// The table of invalid requests for the validation test: each must be a 400
// whose message starts with the name of the offending field.

/** Invalid create bodies: [name, body, field]. */
const CREATES = [
  ['templateID unknown', { templateID: 'no-such-template' }, 'templateID'],
  ['templateID a number', { templateID: 5 }, 'templateID'],
  ['templateID an array', { templateID: ['base'] }, 'templateID'],
  ['timeout negative', { templateID: 'base', timeout: -1 }, 'timeout'],
  ['timeout a string', { templateID: 'base', timeout: '300' }, 'timeout'],
  ['timeout a fraction', { templateID: 'base', timeout: 1.5 }, 'timeout'],
  ['timeout above 24 h', { templateID: 'base', timeout: 86401 }, 'timeout'],
  ['metadata a string', { templateID: 'base', metadata: 'k=v' }, 'metadata'],
  ['metadata a number value', { templateID: 'base', metadata: { k: 1 } }, 'metadata.k'],
  ['metadata a null value', { templateID: 'base', metadata: { k: null } }, 'metadata.k'],
  ['metadata an object value', { templateID: 'base', metadata: { ok: 'v', k: { n: 1 } } }, 'metadata.k'],
  ['envVars a string', { templateID: 'base', envVars: 'A=1' }, 'envVars'],
  ['envVars an array', { templateID: 'base', envVars: ['A=1'] }, 'envVars'],
  ['envVars a bool value', { templateID: 'base', envVars: { K: true } }, 'envVars.K'],
  ['envVars a bad name', { templateID: 'base', envVars: { 'A=B': 'x' } }, 'envVars'],
  ['autoPause a string', { templateID: 'base', autoPause: 'yes' }, 'autoPause'],
  ['autoPause a number', { templateID: 'base', autoPause: 1 }, 'autoPause'],
  ['autoPauseMemory a string', { templateID: 'base', autoPause: true, autoPauseMemory: 'no' }, 'autoPauseMemory'],
  ['autoResume without autoPause', { templateID: 'base', autoResume: { enabled: true } }, 'autoResume'],
  ['autoResume.enabled a string', { templateID: 'base', autoPause: true, autoResume: { enabled: 'x' } }, 'autoResume.enabled'],
  ['allow_internet_access a string', { templateID: 'base', allow_internet_access: 'no' }, 'allow_internet_access'],
  ['secure a string', { templateID: 'base', secure: 'yes' }, 'secure'],
  ['runtimeClass unknown', { templateID: 'base', runtimeClass: 'kata' }, 'runtimeClass'],
  ['runtimeClass a number', { templateID: 'base', runtimeClass: 1 }, 'runtimeClass'],
  ['network not an object', { templateID: 'base', network: true }, 'network'],
  ['network.allowPublicTraffic a string', { templateID: 'base', network: { allowPublicTraffic: 'no' } }, 'network.allowPublicTraffic'],
  ['network.denyOut a domain', { templateID: 'base', network: { denyOut: ['example.com'] } }, 'network.denyOut'],
  ['volumeMounts not an array', { templateID: 'base', volumeMounts: { a: 1 } }, 'volumeMounts'],
  ['body not JSON', '{"templateID":', 'request body'],
  ['body an array', '[1,2]', 'request body'],
  ['body trailing data', '{} {}', 'request body'],
]

/** Every invalid request, for sandbox id (running): { name, method, path, body, field }. */
export function invalidRequests(id) {
  const out = []
  for (const [name, body, field] of CREATES) {
    for (const path of ['/sandboxes', '/v2/sandboxes']) out.push({ name: `create: ${name}`, method: 'POST', path, body, field })
  }
  const now = Math.floor(Date.now() / 1000)
  const sb = `/sandboxes/${id}`
  const more = [
    ['timeout: missing', 'POST', `${sb}/timeout`, {}, 'timeout'],
    ['timeout: a string', 'POST', `${sb}/timeout`, { timeout: '60' }, 'timeout'],
    ['timeout: negative', 'POST', `${sb}/timeout`, { timeout: -1 }, 'timeout'],
    ['timeout: above 24 h', 'POST', `${sb}/timeout`, { timeout: 86401 }, 'timeout'],
    ['refresh: above 3600', 'POST', `${sb}/refreshes`, { duration: 3601 }, 'duration'],
    ['refresh: negative', 'POST', `${sb}/refreshes`, { duration: -5 }, 'duration'],
    ['refresh: a string', 'POST', `${sb}/refreshes`, { duration: '60' }, 'duration'],
    ['pause: memory a string', 'POST', `${sb}/pause`, { memory: 'no' }, 'memory'],
    ['resume: timeout negative', 'POST', `${sb}/resume`, { timeout: -1 }, 'timeout'],
    ['resume: autoPause a number', 'POST', `${sb}/resume`, { autoPause: 1 }, 'autoPause'],
    ['connect: timeout above 24 h', 'POST', `${sb}/connect`, { timeout: 90000 }, 'timeout'],
    ['connect: timeout a string', 'POST', `/v2${sb}/connect`, { timeout: '60' }, 'timeout'],
    ['list: limit 0', 'GET', '/v2/sandboxes?limit=0', undefined, 'limit'],
    ['list: limit 101', 'GET', '/v2/sandboxes?limit=101', undefined, 'limit'],
    ['list: limit abc', 'GET', '/v2/sandboxes?limit=abc', undefined, 'limit'],
    ['list: bad nextToken', 'GET', '/v2/sandboxes?nextToken=notatoken', undefined, 'nextToken'],
    ['list: unknown state', 'GET', '/v2/sandboxes?state=running,dead', undefined, 'state'],
    ['list: bad order', 'GET', '/v2/sandboxes?order=up', undefined, 'order'],
    ['list: bad startedAfter', 'GET', '/v2/sandboxes?startedAfter=yesterday', undefined, 'startedAfter'],
    ['list: metadata without =', 'GET', '/v2/sandboxes?metadata=novalue', undefined, 'metadata'],
    ['v1 list: metadata without =', 'GET', '/sandboxes?metadata=novalue', undefined, 'metadata'],
    ['v1 list: metadata bad escape', 'GET', '/sandboxes?metadata=a%3D%25zz', undefined, 'metadata'],
    ['logs: start negative', 'GET', `${sb}/logs?start=-1`, undefined, 'start'],
    ['logs: start text', 'GET', `${sb}/logs?start=yesterday`, undefined, 'start'],
    ['logs: limit text', 'GET', `${sb}/logs?limit=abc`, undefined, 'limit'],
    ['logs: limit too big', 'GET', `${sb}/logs?limit=10001`, undefined, 'limit'],
    ['metrics: start text', 'GET', `${sb}/metrics?start=now`, undefined, 'start'],
    ['metrics: end negative', 'GET', `${sb}/metrics?end=-1`, undefined, 'end'],
    ['metrics: start after end', 'GET', `${sb}/metrics?start=${now}&end=${now - 60}`, undefined, 'start'],
  ]
  for (const [name, method, path, body, field] of more) out.push({ name, method, path, body, field })
  return out
}
