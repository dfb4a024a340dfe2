"""The warm pod's bootstrap: what a warm pool can pre-warm, and how a tenant is bound.

What is warm before a claim: the node (held by a low-priority pod), the pulled images, the
Kata microVM and its containers, Node.js and the OpenClaw code in the page cache, and the
sync sidecar. What cannot be warm: the gateway process itself. OpenClaw opens the tenant's
SQLite state when it boots, and that state must first be restored from S3; swapping it
under a running gateway would corrupt it. So the gateway boots at bind time (~6 s measured),
but nothing before it does: no scheduling, no node, no pull, no VM boot.

How a tenant is bound (decision): the daemon relabels the pod (optimistic concurrency, see
manifests.claim_patch), then POSTs the tenant's rendered openclaw.json to this bootstrap at
``http://{podIP}:18789/otm/bind``, authenticated by a per-pod token: HMAC-SHA256 of the
pod's name under the ``otm-warm-bind`` key (daemon/kube/warm_bind_token.py). The key reaches the
pod as ``OTM_BIND_TOKEN``; the bootstrap derives its own token and, on Node >= 22.15/23.11
(``process.execve``), re-executes itself with only the derived token in its environment, so
tenant code (the gateway is the bootstrap's child) cannot read the key from
``/proc/<bootstrap>/environ`` and bind other warm pods. It can read its own pod's token,
which is worthless: the pod is bound already, and a repeated bind is accepted only with the
same tenant, config and env as the first (``sync_env`` may differ: fresh credentials).
Why a push over the pod network and not a per-pod Secret or annotation: the kubelet refreshes
Secret and downward-API volumes on its sync period (up to a minute), and tenant pods have no
Kubernetes API access by design. 18789 is used because the NetworkPolicy admits the daemon
on 18789 and 8787 only; the bootstrap releases the port before the gateway binds it.

Bind sequence inside the pod: write openclaw.json (0600) and tenant.env for the sidecar into
the shared ``bind`` emptyDir, answer 202, close the listener, wait for the sidecar's
``restored`` marker (when state sync is on), then start the gateway with the tenant env and
forward SIGTERM to it. Readiness stays failing (``unbound``) until the real gateway answers
/readyz, so "Ready" always means "bound and booted".

Limit: EKS Pod Identity tags a pod's S3 session with its own name, and the tenant IAM policy
scopes S3 to ``tenants/<pod name>/``; a warm pod keeps its ``warm-*`` name, so the
sidecar needs tenant-scoped credentials in the bind's ``sync_env`` (daemon-vended via STS,
see deploy/iam/README.md option c). Vending them is not implemented yet.

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
const port = Number(env.OTM_BIND_PORT || '18789');
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
const configPath = env.OPENCLAW_CONFIG_PATH || path.join(dir, 'openclaw.json');
const MAX_BODY = 1 << 20;
const TENANT_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const ENV_KEY_RE = /^[A-Z_][A-Z0-9_]*$/;

let boundTenant = null;
let boundSignature = null;
let child = null;
let stopping = false;

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

function waitForRestore(done) {
  if (!waitRestore) return done(null);
  const timer = setInterval(() => {
    if (fs.existsSync(path.join(dir, 'restored'))) { clearInterval(timer); done(null); }
    else if (fs.existsSync(path.join(dir, 'restore-failed'))) {
      clearInterval(timer); done(new Error('state restore failed'));
    }
  }, 100);
}

function startGateway(payload) {
  if (stopping) process.exit(0);
  const childEnv = Object.assign({}, env);
  delete childEnv.OTM_BIND_TOKEN;
  delete childEnv.OTM_BIND_DERIVED;
  for (const [k, v] of Object.entries(payload.env || {})) {
    if (ENV_KEY_RE.test(k)) childEnv[k] = String(v);
  }
  childEnv.OPENCLAW_CONFIG_PATH = configPath;
  log('starting gateway for ' + payload.tenant_id);
  child = spawn(command[0], command.slice(1), { env: childEnv, stdio: 'inherit' });
  child.on('exit', (code, signal) => {
    log('gateway exited code=' + code + ' signal=' + signal);
    process.exit(code === null ? 1 : code);
  });
  child.on('error', (err) => { log('cannot start gateway: ' + err.message); process.exit(1); });
}

function bind(payload, res, server) {
  if (!payload || typeof payload.tenant_id !== 'string' || !TENANT_RE.test(payload.tenant_id)
      || typeof payload.config !== 'object' || payload.config === null) {
    return reply(res, 400, { error: 'tenant_id and config are required' });
  }
  const signature = canonical([payload.tenant_id, payload.config, payload.env || {}]);
  if (boundTenant !== null) {
    if (boundSignature === signature) {
      return reply(res, 202, { ok: true, tenant_id: boundTenant });
    }
    return reply(res, 409, { error: 'already bound with another tenant or config' });
  }
  boundTenant = payload.tenant_id;
  boundSignature = signature;
  fs.mkdirSync(dir, { recursive: true });
  writeAtomic(configPath, JSON.stringify(payload.config), 0o600);
  const syncEnv = Object.assign({ TENANT_ID: payload.tenant_id }, payload.sync_env || {});
  writeAtomic(path.join(dir, 'tenant.env'), envFile(syncEnv), 0o600);
  log('bound to ' + boundTenant);
  reply(res, 202, { ok: true, tenant_id: boundTenant });
  // Free the gateway port, then boot the gateway on it.
  server.close(() => waitForRestore((err) => {
    if (err) { log(err.message); process.exit(1); }
    startGateway(payload);
  }));
  // Every response says `connection: close`; idle keep-alive sockets must not hold the port.
  if (server.closeIdleConnections) setImmediate(() => server.closeIdleConnections());
}

const server = http.createServer((req, res) => {
  const url = String(req.url || '').split('?')[0];
  if (req.method === 'GET' && (url === '/healthz' || url === '/health')) {
    return reply(res, 200, { ok: true, status: 'live' });
  }
  if (req.method === 'GET' && (url === '/readyz' || url === '/ready')) {
    const failing = [boundTenant === null ? 'unbound' : 'binding'];
    return reply(res, 503, { ready: false, failing });
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
    try { bind(payload, res, server); }
    catch (e) {
      log('bind failed: ' + e.message);
      reply(res, 500, { error: 'bind failed' });
      process.exit(1);
    }
  });
});

process.on('SIGTERM', () => {
  stopping = true;
  if (child) child.kill('SIGTERM'); else process.exit(0);
});
process.on('SIGINT', () => {
  stopping = true;
  if (child) child.kill('SIGINT'); else process.exit(0);
});

if (!Array.isArray(command) || command.length === 0) {
  log('OTM_GATEWAY_COMMAND is empty');
  process.exit(2);
}
if (!token) { log('OTM_BIND_TOKEN is empty'); process.exit(2); }
server.listen(port, host, () => log('waiting for a bind on ' + host + ':' + port));
"""
