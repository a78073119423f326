// A real OpenID provider (npm oidc-provider 9) for Stratus' tests and the local cluster.
//
//   node server.mjs CONFIG.json
//
// Listens on 127.0.0.1 only and prints one line, "ready http://127.0.0.1:PORT", once it
// serves (the issuer is that URL unless the configuration names another). The
// configuration (tests/README.md describes it) names the port (0: any free port), the
// resources (the APIs access tokens are for: their audience, scope and lifetime), the clients
// and the users with their passwords and groups. What this file adds to oidc-provider:
//   - findAccount over the configured users; a `groups` claim (scope `groups`) in ID tokens,
//     userinfo and every JWT access token, with `preferred_username`;
//   - a login form of its own for the interactions (device flow): a user's password is checked,
//     a wrong one shows the form again with 401; consent is given at once (every client here
//     is first-party);
//   - the grant type `password` (RFC 6749 §4.3) for clients that list it: the configured
//     users' passwords are checked (a wrong one is `invalid_grant`), the access token is a JWT
//     for the requested (or the first configured) resource, a refresh token is issued when
//     `offline_access` is asked for.
// Signing keys (RS256) are generated at every start; nothing is stored on disk.

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';
const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email', 'groups'];

function fail(message) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(2);
}

function loadConfig(path) {
  if (!path) fail('usage: node server.mjs CONFIG.json');
  let config;
  try {
    config = JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (error) {
    fail(`${path}: ${error.message}`);
  }
  const where = (key) => `${path}: ${key}`;
  if (!Number.isInteger(config.port ?? 0)) fail(where('port must be an integer'));
  if (!Array.isArray(config.resources) || config.resources.length === 0) {
    fail(where('resources must be a non-empty list'));
  }
  config.resources.forEach((r, i) => {
    if (typeof r.indicator !== 'string' || !URL.canParse(r.indicator)) {
      fail(where(`resources[${i}].indicator must be an absolute URI`));
    }
  });
  if (!Array.isArray(config.clients) || config.clients.length === 0) fail(where('clients must be a non-empty list'));
  config.clients.forEach((c, i) => {
    if (typeof c.client_id !== 'string') fail(where(`clients[${i}].client_id must be a string`));
  });
  if (!Array.isArray(config.users)) fail(where('users must be a list'));
  config.users.forEach((u, i) => {
    if (typeof u.username !== 'string' || typeof u.password !== 'string' || u.password.length === 0) {
      fail(where(`users[${i}] needs a username and a non-empty password`));
    }
    if (u.groups !== undefined && !Array.isArray(u.groups)) fail(where(`users[${i}].groups must be a list`));
  });
  return config;
}

/** Whether two strings are equal, in a time that does not depend on where they differ. */
function sameSecret(a, b) {
  const x = crypto.createHash('sha256').update(a).digest();
  const y = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(x, y);
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>\n<body>\n<h1>${escapeHtml(title)}</h1>\n${body}\n</body></html>\n`;
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 16384) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };
}

function providerConfiguration(config) {
  const users = new Map(config.users.map((u) => [u.username, u]));
  const resources = new Map(config.resources.map((r) => [r.indicator, r]));
  const defaultIndicator = config.resources[0].indicator;

  const account = (user) => ({
    accountId: user.username,
    async claims() {
      return {
        sub: user.username,
        preferred_username: user.username,
        name: user.name ?? user.username,
        ...(user.email ? { email: user.email, email_verified: true } : {}),
        groups: user.groups ?? [],
      };
    },
  });

  const resourceInfo = (indicator) => {
    const resource = resources.get(indicator);
    if (!resource) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
    return {
      scope: resource.scope ?? 'hsm',
      audience: resource.audience ?? indicator,
      accessTokenFormat: 'jwt',
      accessTokenTTL: resource.access_token_ttl ?? 600,
      jwt: { sign: { alg: 'RS256' } },
    };
  };

  return {
    users,
    resourceInfo,
    defaultIndicator,
    options: {
      clients: config.clients.map((c) => ({
        client_id: c.client_id,
        client_name: c.client_name ?? c.client_id,
        token_endpoint_auth_method: 'none',
        grant_types: c.grant_types ?? [DEVICE_CODE, 'refresh_token', 'password'],
        response_types: [],
        redirect_uris: [],
      })),
      jwks: { keys: [signingKey()] },
      cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
      findAccount: async (_ctx, sub) => {
        const user = users.get(sub);
        return user ? account(user) : undefined;
      },
      scopes: OIDC_SCOPES,
      claims: {
        openid: ['sub'],
        profile: ['preferred_username', 'name'],
        email: ['email', 'email_verified'],
        groups: ['groups'],
      },
      // Every JWT access token says who and in which groups.
      extraTokenClaims: async (_ctx, token) => {
        const user = token.accountId && users.get(token.accountId);
        return user ? { preferred_username: user.username, groups: user.groups ?? [] } : undefined;
      },
      issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
      features: {
        devInteractions: { enabled: false },
        deviceFlow: {
          enabled: true,
          userCodeInputSource: async (ctx, form, _out, err) => {
            const message = err ? '<p class="error">That code is not valid; try again.</p>' : '<p>Enter the code your device shows.</p>';
            ctx.body = page('Device sign-in', `${message}\n${form}\n<button type="submit" form="op.deviceInputForm">Continue</button>`);
          },
          userCodeConfirmSource: async (ctx, form, client, _info, userCode) => {
            ctx.body = page('Confirm the device', `<p>${escapeHtml(client.clientName ?? client.clientId)} shows the code <code>${escapeHtml(userCode)}</code>.</p>\n${form}\n<button type="submit" form="op.deviceConfirmForm">Continue</button>`);
          },
          successSource: async (ctx) => {
            ctx.body = page('Signed in', '<p>You are signed in; you can close this page.</p>');
          },
        },
        resourceIndicators: {
          enabled: true,
          defaultResource: async (_ctx, _client, oneOf) => oneOf ?? defaultIndicator,
          useGrantedResource: async () => true,
          getResourceServerInfo: async (_ctx, indicator) => resourceInfo(indicator),
        },
        revocation: { enabled: true },
        introspection: { enabled: false },
        registration: { enabled: false },
      },
      interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
      ttl: {
        AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
        DeviceCode: 600,
        Grant: 86400,
        IdToken: 600,
        Interaction: 600,
        RefreshToken: 86400,
        Session: 3600,
      },
      pkce: { required: () => false },
      renderError: async (ctx, out) => {
        ctx.type = 'html';
        ctx.body = page('Error', `<p class="error">${escapeHtml(out.error)}: ${escapeHtml(out.error_description ?? '')}</p>`);
      },
    },
  };
}

/** The grant type `password`: the configured users' passwords, checked. */
function passwordGrant(provider, setup) {
  return async function passwordGrantHandler(ctx) {
    const { username, password, scope, resource } = ctx.oidc.params;
    if (!username || !password) throw new errors.InvalidRequest('username and password are required');
    const user = setup.users.get(username);
    // Compare against something even for an unknown user, so both cost the same.
    const matches = sameSecret(user?.password ?? crypto.randomBytes(16).toString('hex'), password);
    if (!user || !matches) throw new errors.InvalidGrant('invalid username or password');

    const { client } = ctx.oidc;
    const requested = new Set((scope ?? 'openid').split(' ').filter(Boolean));
    const indicator = Array.isArray(resource) ? resource[0] : (resource ?? setup.defaultIndicator);
    const info = setup.resourceInfo(indicator);

    const grant = new provider.Grant({ clientId: client.clientId, accountId: user.username });
    grant.addOIDCScope([...requested].filter((s) => OIDC_SCOPES.includes(s)).join(' '));
    grant.addResourceScope(indicator, info.scope);
    const grantId = await grant.save();

    const at = new provider.AccessToken({
      accountId: user.username,
      client,
      grantId,
      gty: 'password',
      scope: info.scope,
    });
    at.resourceServer = new provider.ResourceServer(indicator, info);
    const accessToken = await at.save();

    let refreshToken;
    if (client.grantTypeAllowed('refresh_token') && requested.has('offline_access')) {
      const rt = new provider.RefreshToken({
        accountId: user.username,
        client,
        grantId,
        gty: 'password',
        resource: indicator,
        rotations: 0,
        scope: [...requested, ...info.scope.split(' ')].join(' '),
      });
      refreshToken = await rt.save();
    }

    ctx.body = {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: at.expiration,
      scope: info.scope,
      ...(refreshToken ? { refresh_token: refreshToken } : {}),
    };
  };
}

/** The login form of the interactions and its submission; consent is given at once. */
async function interaction(provider, setup, req, res) {
  const url = new URL(req.url, 'http://localhost');
  const match = url.pathname.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    return;
  }
  const details = await provider.interactionDetails(req, res);
  const { uid, prompt, params, session } = details;
  const form = (status, message) => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(page('Sign in', `${message ? `<p class="error">${escapeHtml(message)}</p>\n` : ''}<form id="login" method="post" action="/interaction/${escapeHtml(uid)}/login">
<label>User <input type="text" name="username" autocomplete="username"></label>
<label>Password <input type="password" name="password" autocomplete="current-password"></label>
<button type="submit">Sign in</button>
</form>`));
  };

  if (prompt.name === 'login') {
    if (req.method === 'GET' && !match[2]) {
      form(200);
      return;
    }
    if (req.method !== 'POST' || !match[2]) {
      res.writeHead(405, { 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const body = await readForm(req);
    const username = body.get('username') ?? '';
    const password = body.get('password') ?? '';
    const user = setup.users.get(username);
    const matches = sameSecret(user?.password ?? crypto.randomBytes(16).toString('hex'), password);
    if (!user || !matches || password === '') {
      form(401, 'Wrong user name or password.');
      return;
    }
    await provider.interactionFinished(req, res, { login: { accountId: user.username } }, { mergeWithLastSubmission: false });
    return;
  }

  if (prompt.name === 'consent') {
    const missing = prompt.details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    // The resource's own scope, so its access token carries it even when not asked for.
    const indicator = params.resource ?? setup.defaultIndicator;
    grant.addResourceScope(indicator, setup.resourceInfo(indicator).scope);
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }

  res.writeHead(400, { 'content-type': 'text/plain' }).end(`unsupported prompt ${prompt.name}\n`);
}

const config = loadConfig(process.argv[2]);
const server = http.createServer();
server.listen(config.port ?? 0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = config.issuer ?? `http://127.0.0.1:${port}`;
  const setup = providerConfiguration(config);
  const provider = new Provider(issuer, setup.options);
  provider.registerGrantType('password', passwordGrant(provider, setup), ['username', 'password', 'scope', 'resource']);
  provider.on('server_error', (_ctx, error) => process.stderr.write(`server_error: ${error.stack}\n`));
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(provider, setup, req, res).catch((error) => {
        process.stderr.write(`interaction: ${error.name}: ${error.message}\n`);
        if (!res.headersSent) {
          res.writeHead(error.statusCode ?? 400, { 'content-type': 'text/plain' });
        }
        res.end(`${error.name}: ${error.error_description ?? error.message}\n`);
      });
      return;
    }
    callback(req, res);
  });
  process.stdout.write(`ready http://127.0.0.1:${port}\n`);
});
server.on('error', (error) => fail(`cannot listen: ${error.message}`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
