"""The warm pod's bootstrap: a pre-booted OpenClaw gateway, bound to a tenant at claim.

At pod start the bootstrap writes the warm config (the namespace's ``otm-warm-config``
Secret, rendered by ``openclaw_config.render_warm_config``: Telegram disabled, throw-away
agent ``warm``, no tenant data) with a random per-pod gateway token and webhook secret, and
boots the gateway on it. By the time a wake claims the pod, the gateway's 15-20 CPU-seconds
of boot are spent. The bootstrap stays the container's main process: it forwards SIGTERM to
the gateway and exits with it, and listens on its own port (``WARM_BIND_PORT``, 18790) for:

* ``POST /otm/bind`` (Bearer token, per pod: see below): ``{tenant_id, config,
  sync_env}``. ``config`` is the bound openclaw.json (``render_bound_config``);
  ``sync_env`` carries the tenant-scoped S3 credentials (daemon/kube/tenant_credentials.py)
  and prefix for the sync sidecar. The bootstrap
  writes ``tenant.env`` for the sidecar, answers 202, waits for the sidecar's ``restored``
  marker (state sync on: the tenant's ``agents/main/`` and workspace are in place, under an
  agent id the warm gateway never opened), then rewrites openclaw.json atomically (temp
  file + rename): the gateway hot-reloads it, no restart. Its own gateway token is kept in
  the written config, so the gateway section does not change (a change would restart it).
* the same POST again for the same tenant without ``config``: a credential refresh. Only
  ``tenant.env`` is rewritten (the sidecar re-reads it before every sync); 200. A repeated
  POST with a ``config`` is accepted (202, an idempotent retry; ``sync_env`` may differ:
  fresh credentials) only with the same tenant, config and env as the first bind, else 409.
* ``GET /readyz``: the pod's readiness. 503 until bound, restored and configured; then
  Ready only when the gateway's /readyz passes AND the tenant's webhook accepts the
  tenant's secret (a POST with the secret and an empty body: OpenClaw answers 400 past
  the secret check and 401 before it, and spools nothing).
* ``GET /healthz``: the bootstrap is alive. Liveness and startup probe the gateway's own
  /healthz on 18789, which keeps answering throughout the bind: no liveness gap.

The bind token is per pod: HMAC-SHA256 of the pod's name under the ``otm-warm-bind`` key
(daemon/kube/warm_bind_token.py). The key reaches the pod as ``OTM_BIND_TOKEN``, its name as
``OTM_POD_NAME`` (downward API); the bootstrap derives its own token and, on Node >=
22.15/23.11 (``process.execve``), re-executes itself with only the derived token in its
environment, so tenant code (the gateway is the bootstrap's child) cannot read the key from
``/proc/<bootstrap>/environ`` and bind or refresh other warm pods. It can read its own pod's
token, which is worthless: the pod is bound already, and a repeated bind must match the first.

Why a push over the pod network and not a Secret or annotation: the kubelet refreshes Secret
volumes on its sync period (up to a minute), and tenant pods have no Kubernetes API access.

What is not carried into the running gateway: the tenant's global ``state/openclaw.sqlite``
(update_id de-duplication, delivery state, pairing approvals); the warm gateway's own is
used. otm's router buffer de-duplicates updates before they reach the agent.

The script runs on the OpenClaw image's Node (24) and on Node >= 18 in tests.
"""

from __future__ import annotations

BOOTSTRAP_JS = r"""
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { spawn } = require('child_process');

const env = process.env;
const port = Number(env.OTM_BIND_PORT || '18790');
const host = env.OTM_BIND_HOST || '0.0.0.0';
const dir = env.OTM_BIND_DIR || '/run/otm';
// Per-pod token (see the module doc): derive it, then drop the namespace key from our
// environment by re-executing with the derived token only.
let token = env.OTM_BIND_TOKEN || '';
if (env.OTM_POD_NAME && env.OTM_BIND_DERIVED !== '1' && token) {
  token = crypto.createHmac('sha256', token).update(env.OTM_POD_NAME).digest('hex');
  const nextEnv = Object.assign({}, env, { OTM_BIND_TOKEN: token, OTM_BIND_DERIVED: '1' });
  if (typeof process.execve === 'function') {
    process.execve(process.execPath, [process.execPath, ...process.execArgv], nextEnv);
  }
  process.stdout.write('otm-bootstrap: no process.execve: the bind key stays in this environ\n');
}
const command = JSON.parse(env.OTM_GATEWAY_COMMAND || '[]');
const waitRestore = env.OTM_WAIT_RESTORE === '1';
const warmConfigPath = env.OTM_WARM_CONFIG || '/etc/openclaw-warm/openclaw.json';
const configPath = env.OPENCLAW_CONFIG_PATH || path.join(dir, 'openclaw.json');
const MAX_BODY = 1 << 20;
const TENANT_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const ENV_KEY_RE = /^[A-Z_][A-Z0-9_]*$/;
const gatewayToken = crypto.randomBytes(24).toString('hex');
// Tests only: every fake pod shares 127.0.0.1, so the fake kubelet maps the pod's ports.
const probePorts = { gateway: Number(env.OTM_PROBE_GATEWAY_PORT || 0),
                     webhook: Number(env.OTM_PROBE_WEBHOOK_PORT || 0) };

let boundTenant = null;
let boundSignature = null;
let state = 'unbound';  // unbound → restoring → configured | failed
let boundConfig = null;
let configuredAt = 0;
let webhookVerified = false;
let child = null;
let stopping = false;
const timings = {};  // ms per bind phase, for the daemon's wake metrics (GET /otm/timings)

function log(msg) { process.stdout.write('otm-bootstrap: ' + msg + '\n'); }

function reply(res, code, body) {
  res.writeHead(code, { 'content-type': 'application/json', connection: 'close' });
  res.end(JSON.stringify(body));
}

function authorized(req) {
  const got = Buffer.from(String(req.headers['authorization'] || ''));
  const want = Buffer.from('Bearer ' + token);
  return token.length > 0 && got.length === want.length && crypto.timingSafeEqual(got, want);
}

// JSON with sorted keys: a repeated bind must carry the same content, in any key order.
function canonical(value) {
  if (Array.isArray(value)) return '[' + value.map(canonical).join(',') + ']';
  if (value !== null && typeof value === 'object') {
    return '{' + Object.keys(value).sort()
      .map((k) => JSON.stringify(k) + ':' + canonical(value[k])).join(',') + '}';
  }
  return JSON.stringify(value);
}

function writeAtomic(file, text, mode) {
  const tmp = file + '.tmp-' + process.pid;
  fs.writeFileSync(tmp, text, { mode });
  fs.renameSync(tmp, file);
}

function shellQuote(value) { return "'" + String(value).replace(/'/g, "'\\''") + "'"; }

function envFile(vars) {
  return Object.entries(vars)
    .filter(([k]) => ENV_KEY_RE.test(k))
    .map(([k, v]) => k + '=' + shellQuote(v) + '\n').join('');
}

// The pod's own gateway token replaces whatever the rendered config carries, warm and bound
// alike: the gateway section never changes, so the bind is a hot reload, not a restart.
function withOwnToken(config) {
  const out = JSON.parse(JSON.stringify(config));
  out.gateway = Object.assign({}, out.gateway, { auth: { mode: 'token', token: gatewayToken } });
  return out;
}

// The image's baked Node compile cache into the pod's empty /tmp (deploy/agent-image).
function copyCompileCache() {
  const source = env.OTM_COMPILE_CACHE;
  if (!source) return;
  try {
    fs.cpSync(source, path.join(require('os').tmpdir(), path.basename(source)),
              { recursive: true });
  } catch (e) { log('no compile cache copied: ' + e.message); }
}

function bootWarmGateway() {
  copyCompileCache();
  const warm = JSON.parse(fs.readFileSync(warmConfigPath, 'utf8'));
  const telegram = (warm.channels || {}).telegram;
  if (telegram && telegram.webhookSecret) {
    telegram.webhookSecret = crypto.randomBytes(24).toString('hex');
  }
  fs.mkdirSync(dir, { recursive: true });
  writeAtomic(configPath, JSON.stringify(withOwnToken(warm)), 0o600);
  const childEnv = Object.assign({}, env);
  delete childEnv.OTM_BIND_TOKEN;
  delete childEnv.OTM_BIND_DERIVED;
  childEnv.OPENCLAW_CONFIG_PATH = configPath;
  childEnv.OPENCLAW_GATEWAY_TOKEN = gatewayToken;
  log('booting the warm gateway');
  child = spawn(command[0], command.slice(1), { env: childEnv, stdio: 'inherit' });
  child.on('exit', (code, signal) => {
    log('gateway exited code=' + code + ' signal=' + signal);
    process.exit(code === null || state === 'failed' ? 1 : code);
  });
  child.on('error', (err) => { log('cannot start gateway: ' + err.message); process.exit(1); });
}

function waitForRestore(done) {
  if (!waitRestore) return done(null);
  const timer = setInterval(() => {
    if (fs.existsSync(path.join(dir, 'restored'))) { clearInterval(timer); done(null); }
    else if (fs.existsSync(path.join(dir, 'restore-failed'))) {
      clearInterval(timer); done(new Error('state restore failed'));
    }
  }, 50);
}

function writeTenantEnv(payload) {
  const syncEnv = Object.assign({}, payload.sync_env || {}, { TENANT_ID: payload.tenant_id });
  writeAtomic(path.join(dir, 'tenant.env'), envFile(syncEnv), 0o600);
}

function bind(payload, res) {
  if (!payload || typeof payload.tenant_id !== 'string' || !TENANT_RE.test(payload.tenant_id)) {
    return reply(res, 400, { error: 'tenant_id is required' });
  }
  const signature = canonical([payload.tenant_id, payload.config, payload.env || {}]);
  if (boundTenant !== null) {
    if (boundTenant !== payload.tenant_id) {
      return reply(res, 409, { error: 'already bound to another tenant' });
    }
    if (payload.config === undefined && payload.env === undefined) {
      writeTenantEnv(payload);  // a credential refresh
      log('credentials refreshed for ' + boundTenant);
      return reply(res, 200, { ok: true, tenant_id: boundTenant, refreshed: true });
    }
    // A retried bind: the same tenant, config and env as the first (sync_env may differ).
    if (boundSignature !== signature) {
      return reply(res, 409, { error: 'already bound with another config' });
    }
    writeTenantEnv(payload);
    return reply(res, 202, { ok: true, tenant_id: boundTenant });
  }
  if (typeof payload.config !== 'object' || payload.config === null) {
    return reply(res, 400, { error: 'config is required' });
  }
  boundTenant = payload.tenant_id;
  boundSignature = signature;
  state = 'restoring';
  fs.mkdirSync(dir, { recursive: true });
  writeTenantEnv(payload);
  log('bound to ' + boundTenant);
  reply(res, 202, { ok: true, tenant_id: boundTenant });
  const bindAt = Date.now();
  waitForRestore((err) => {
    if (err) { state = 'failed'; log(err.message); if (child) child.kill('SIGTERM'); return; }
    timings.restore_ms = Date.now() - bindAt;
    const writeAt = Date.now();
    boundConfig = withOwnToken(payload.config);
    writeAtomic(configPath, JSON.stringify(boundConfig), 0o600);
    timings.config_write_ms = Date.now() - writeAt;
    configuredAt = Date.now();
    state = 'configured';
    log('config written for ' + boundTenant);
  });
}

function request(options, body) {
  return new Promise((resolve) => {
    const opts = Object.assign({ host: '127.0.0.1', timeout: 2000 }, options);
    const req = http.request(opts, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => { req.destroy(); resolve(0); });
    req.end(body);
  });
}

// Ready = the gateway is ready and the tenant's webhook accepts the tenant's secret.
async function tenantReady() {
  const gw = boundConfig.gateway || {};
  const tg = (boundConfig.channels || {}).telegram || {};
  const ready = await request({ port: probePorts.gateway || gw.port, path: '/readyz',
                                method: 'GET' });
  if (ready !== 200) return 'gateway';
  // Once the tenant's secret was accepted, the gateway's own readiness suffices: no
  // webhook request per probe for the rest of the pod's life.
  if (webhookVerified) return null;
  const hook = await request({
    port: probePorts.webhook || tg.webhookPort, path: tg.webhookPath, method: 'POST',
    headers: { 'content-type': 'application/json',
               'x-telegram-bot-api-secret-token': tg.webhookSecret },
  }, '');
  // An empty body past the secret check is a 400 (OpenClaw: body not JSON; nothing is
  // spooled); a wrong secret is a 401, no listener 0/404. `{}` would be a 500 there.
  webhookVerified = hook === 400 || (hook >= 200 && hook < 300);
  return webhookVerified ? null : 'webhook';
}

const server = http.createServer((req, res) => {
  const url = String(req.url || '').split('?')[0];
  if (req.method === 'GET' && (url === '/healthz' || url === '/health')) {
    return reply(res, 200, { ok: true, status: 'live' });
  }
  if (req.method === 'GET' && (url === '/readyz' || url === '/ready')) {
    if (state !== 'configured') return reply(res, 503, { ready: false, failing: [state] });
    tenantReady().then((failing) => {
      if (failing !== null) return reply(res, 503, { ready: false, failing: [failing] });
      if (timings.channel_up_ms === undefined) timings.channel_up_ms = Date.now() - configuredAt;
      reply(res, 200, { ready: true, tenant_id: boundTenant });
    });
    return;
  }
  if (req.method === 'GET' && url === '/otm/timings') {
    if (!authorized(req)) return reply(res, 401, { error: 'unauthorized' });
    return reply(res, 200, timings);
  }
  if (url !== '/otm/bind') return reply(res, 404, { error: 'not found' });
  if (req.method !== 'POST') return reply(res, 405, { error: 'method not allowed' });
  if (!authorized(req)) return reply(res, 401, { error: 'unauthorized' });
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_BODY) { reply(res, 413, { error: 'body too large' }); req.destroy(); return; }
    chunks.push(c);
  });
  req.on('end', () => {
    if (size > MAX_BODY) return;
    let payload;
    try { payload = JSON.parse(Buffer.concat(chunks).toString('utf8')); }
    catch (e) { return reply(res, 400, { error: 'invalid JSON' }); }
    try { bind(payload, res); }
    catch (e) {
      log('bind failed: ' + e.message);
      reply(res, 500, { error: 'bind failed' });
      state = 'failed';
      if (child) child.kill('SIGTERM');
    }
  });
});

function stop(signal) {
  stopping = true;
  if (child) child.kill(signal); else process.exit(0);
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

if (!Array.isArray(command) || command.length === 0) {
  log('OTM_GATEWAY_COMMAND is empty');
  process.exit(2);
}
if (!token) { log('OTM_BIND_TOKEN is empty'); process.exit(2); }
try { bootWarmGateway(); }
catch (e) { log('cannot read the warm config: ' + e.message); process.exit(2); }
server.listen(port, host, () => log('waiting for a bind on ' + host + ':' + port));
"""
