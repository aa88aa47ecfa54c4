// The embedded OpenID provider of `kumkm up` and the tests: oidc-provider (a certified OpenID Connect
// implementation) configured from Keycloak realm exports, so that services verify its tokens exactly as
// they verify Keycloak's.
//
//   node provider.mjs --port 8099 --issuer http://127.0.0.1:8099 --keys jwks.json --realm realm.json [--realm more.json]
//
// What it reads from the realm files: realm roles (with composites), users (username, enabled, password
// credentials, realmRoles, attributes, firstName/lastName/email), service-account users
// (`service-account-<clientId>`), clients (public or secret, the flows they enable, redirect URIs, device
// grant attribute, their default and optional client scopes, their own protocol mappers) and client scopes
// with their protocol mappers. Access token claims are what the client's mappers produce, as Keycloak
// would: audience, realm roles, user attributes, user properties, full name, hardcoded claims.
//
// Subjects: a person's `sub` is the username; a service account's `sub` is its user's username,
// `service-account-<clientId>` (Keycloak uses the user's id for both; services treat `sub` as opaque).
//
// It logs events and client ids, never passwords, tokens, codes or usernames.

import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

// The one resource server of the platform: every access token is a JWT for it. The audience comes from
// the realm's audience mappers.
const RESOURCE = 'urn:kumkm:api';
const ACCESS_TOKEN_TTL = 300; // Keycloak's default access token lifespan

function log(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
}

function fail(message) {
  process.stderr.write(`kumkm-oidc-provider: ${message}\n`);
  process.exit(2);
}

// ---- arguments -------------------------------------------------------------------------------------

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    issuer: { type: 'string' },
    keys: { type: 'string' },
    realm: { type: 'string', multiple: true },
  },
});
if (!args.port || !args.issuer || !args.keys || !args.realm?.length) {
  fail('usage: provider.mjs --port PORT --issuer URL --keys JWKS_FILE --realm REALM_FILE [--realm ...]');
}

function readJson(path, what) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    return fail(`cannot read the ${what} ${path}: ${error.message}`);
  }
}

const jwks = readJson(args.keys, 'key file');
// An issuer with a path (Keycloak's /realms/<name>) serves every endpoint under that path.
const PREFIX = new URL(args.issuer).pathname.replace(/\/$/, '');
if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) fail(`${args.keys} holds no keys`);

// ---- the realm ---------------------------------------------------------------------------------------

const roles = new Map(); // name -> composite realm role names
const users = new Map(); // lowercased username -> user
const clients = new Map(); // clientId -> client
const scopes = new Map(); // client scope name -> mappers
let defaultScopes = new Set();
let optionalScopes = new Set();

const first = (value) => (Array.isArray(value) ? value[0] : value);
const flag = (value) => value === true || value === 'true';

for (const file of args.realm) {
  const realm = readJson(file, 'realm file');
  for (const role of realm.roles?.realm ?? []) {
    roles.set(role.name, role.composite ? (role.composites?.realm ?? []) : []);
  }
  for (const scope of realm.clientScopes ?? []) {
    if ((scope.protocol ?? 'openid-connect') === 'openid-connect') scopes.set(scope.name, scope.protocolMappers ?? []);
  }
  if (realm.defaultDefaultClientScopes) defaultScopes = new Set(realm.defaultDefaultClientScopes);
  if (realm.defaultOptionalClientScopes) optionalScopes = new Set(realm.defaultOptionalClientScopes);
  for (const user of realm.users ?? []) {
    const username = String(user.username).toLowerCase();
    const password = (user.credentials ?? []).find((credential) => credential.type === 'password');
    users.set(username, {
      username,
      enabled: user.enabled !== false,
      password: password ? passwordChecker(password, username, file) : undefined,
      realmRoles: user.realmRoles ?? [],
      attributes: user.attributes ?? {},
      firstName: user.firstName,
      lastName: user.lastName,
      email: user.email,
      emailVerified: user.emailVerified === true,
      serviceAccountClientId: user.serviceAccountClientId,
    });
  }
  for (const client of realm.clients ?? []) {
    if (client.enabled === false || (client.protocol ?? 'openid-connect') !== 'openid-connect') continue;
    clients.set(client.clientId, client);
  }
}

// A Keycloak password credential: the clear `value` of an import, or a pbkdf2 hash of an export.
function passwordChecker(credential, username, file) {
  const digest = (text) => crypto.createHash('sha256').update(text, 'utf8').digest();
  if (typeof credential.value === 'string') {
    const expected = digest(credential.value);
    return (candidate) => crypto.timingSafeEqual(expected, digest(candidate));
  }
  const secret = JSON.parse(credential.secretData ?? '{}');
  const data = JSON.parse(credential.credentialData ?? '{}');
  const algorithm = /^pbkdf2(?:-(sha256|sha512))?$/.exec(data.algorithm ?? '');
  if (!algorithm || !secret.value || !secret.salt) {
    fail(`${file}: the password of ${username} is hashed with ${data.algorithm ?? 'an unknown algorithm'}; `
      + 'give it as a clear "value" credential (realm imports) or a pbkdf2 hash');
  }
  const hash = algorithm[1] ?? 'sha1';
  const expected = Buffer.from(secret.value, 'base64');
  const salt = Buffer.from(secret.salt, 'base64');
  return (candidate) => {
    const actual = crypto.pbkdf2Sync(candidate, salt, data.hashIterations, expected.length, hash);
    return crypto.timingSafeEqual(expected, actual);
  };
}

function effectiveRoles(names) {
  const seen = new Set();
  const visit = (name) => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const composite of roles.get(name) ?? []) visit(composite);
  };
  names.forEach(visit);
  return [...seen];
}

function serviceAccountOf(clientId) {
  for (const user of users.values()) {
    if (user.serviceAccountClientId === clientId) return user;
  }
  return users.get(`service-account-${clientId}`.toLowerCase());
}

// ---- protocol mappers (what Keycloak's OIDC mappers put into a token) -----------------------------

function clientScopeNames(client, requested) {
  const names = new Set(client.defaultClientScopes ?? defaultScopes);
  for (const name of client.optionalClientScopes ?? optionalScopes) {
    if (requested.has(name)) names.add(name);
  }
  return names;
}

function mappersOf(client, requested) {
  const mappers = [];
  for (const name of clientScopeNames(client, requested)) mappers.push(...(scopes.get(name) ?? []));
  mappers.push(...(client.protocolMappers ?? []));
  return mappers;
}

function typed(value, type) {
  switch ((type ?? 'String').toLowerCase()) {
    case 'long':
    case 'int':
      return Number(value);
    case 'boolean':
      return value === true || value === 'true';
    case 'json':
      return typeof value === 'string' ? JSON.parse(value) : value;
    default:
      return String(value);
  }
}

function setClaim(claims, name, value) {
  // Keycloak nests a dotted claim name (realm_access.roles); `\.` is a literal dot.
  const path = name.split(/(?<!\\)\./).map((part) => part.replace(/\\\./g, '.'));
  let target = claims;
  for (const part of path.slice(0, -1)) {
    if (typeof target[part] !== 'object' || target[part] === null) target[part] = {};
    target = target[part];
  }
  target[path.at(-1)] = value;
}

function mapperValue(mapper, user, client) {
  const config = mapper.config ?? {};
  const multivalued = flag(config.multivalued);
  const shape = (values) => {
    const list = values.filter((value) => value !== undefined && value !== null).map((value) => typed(value, config['jsonType.label']));
    // Keycloak leaves out a claim without values.
    if (multivalued) return list.length ? list : undefined;
    return list.length ? list[0] : undefined;
  };
  switch (mapper.protocolMapper) {
    case 'oidc-hardcoded-claim-mapper':
      return typed(config['claim.value'], config['jsonType.label']);
    case 'oidc-usermodel-realm-role-mapper': {
      const prefix = config['usermodel.realmRoleMapping.rolePrefix'] ?? '';
      return shape(effectiveRoles(user.realmRoles).map((role) => `${prefix}${role}`));
    }
    case 'oidc-usermodel-attribute-mapper': {
      const value = user.attributes[config['user.attribute']];
      return shape(value === undefined ? [] : [].concat(value));
    }
    case 'oidc-usermodel-property-mapper':
      return shape([user[config['user.attribute']]]);
    case 'oidc-full-name-mapper': {
      const name = [user.firstName, user.lastName].filter(Boolean).join(' ');
      return name || undefined;
    }
    default:
      return undefined;
  }
}

const NAMED_CLAIMS = {
  'oidc-full-name-mapper': 'name',
};
const HANDLED = new Set([
  'oidc-hardcoded-claim-mapper', 'oidc-usermodel-realm-role-mapper', 'oidc-usermodel-attribute-mapper',
  'oidc-usermodel-property-mapper', 'oidc-full-name-mapper', 'oidc-audience-mapper',
]);
// Mappers of Keycloak's own bookkeeping that put nothing the platform reads into a token.
const IGNORED = new Set([
  'oidc-sub-mapper', 'oidc-allowed-origins-mapper', 'oidc-acr-mapper', 'oidc-auth-time-mapper',
  'oidc-audience-resolve-mapper', 'oidc-usersessionmodel-note-mapper', 'oidc-address-mapper',
]);

function mappedClaims(client, user, requested, tokenKind) {
  const claims = {};
  for (const mapper of mappersOf(client, requested)) {
    const config = mapper.config ?? {};
    if (!flag(config[`${tokenKind}.claim`]) || mapper.protocolMapper === 'oidc-audience-mapper') continue;
    const name = config['claim.name'] ?? NAMED_CLAIMS[mapper.protocolMapper];
    const value = mapperValue(mapper, user, client);
    if (name && value !== undefined) setClaim(claims, name, value);
  }
  return claims;
}

function audienceOf(client) {
  const audience = new Set();
  for (const mapper of mappersOf(client, new Set())) {
    const config = mapper.config ?? {};
    if (mapper.protocolMapper !== 'oidc-audience-mapper' || !flag(config['access.token.claim'])) continue;
    if (config['included.custom.audience']) audience.add(config['included.custom.audience']);
    if (config['included.client.audience']) audience.add(config['included.client.audience']);
  }
  return [...audience];
}

{
  const unknown = new Set();
  const all = [...scopes.values(), ...[...clients.values()].map((client) => client.protocolMappers ?? [])].flat();
  for (const mapper of all) {
    if (!HANDLED.has(mapper.protocolMapper) && !IGNORED.has(mapper.protocolMapper)) unknown.add(mapper.protocolMapper);
  }
  if (unknown.size) log('mappers.ignored', { types: [...unknown] });
}

// ---- clients as oidc-provider metadata -------------------------------------------------------------

const PASSWORD_GRANT = 'password';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const wildcardRedirects = new Map(); // clientId -> prefixes (Keycloak's trailing `*`)

function clientMetadata(client) {
  const attributes = client.attributes ?? {};
  const grants = [];
  const interactive = [];
  if (client.standardFlowEnabled !== false) interactive.push('authorization_code');
  if (flag(attributes['oauth2.device.authorization.grant.enabled'])) interactive.push(DEVICE_GRANT);
  if (client.directAccessGrantsEnabled === true) interactive.push(PASSWORD_GRANT);
  grants.push(...interactive);
  if (interactive.length) grants.push('refresh_token');
  if (!client.publicClient && client.serviceAccountsEnabled === true) grants.push('client_credentials');

  const exact = [];
  const prefixes = [];
  for (const uri of client.redirectUris ?? []) {
    if (uri.endsWith('*')) {
      prefixes.push(uri.slice(0, -1));
      // oidc-provider wants at least one exact URI: the prefix itself, where it is one.
      if (URL.parse(uri.slice(0, -1))) exact.push(uri.slice(0, -1));
    } else {
      exact.push(uri);
    }
  }
  wildcardRedirects.set(client.clientId, prefixes);
  const metadata = {
    client_id: client.clientId,
    client_name: client.name || client.clientId,
    grant_types: grants,
    response_types: grants.includes('authorization_code') ? ['code'] : [],
    redirect_uris: exact,
    token_endpoint_auth_method: client.publicClient ? 'none' : 'client_secret_basic',
  };
  if (!client.publicClient) {
    if (!client.secret) fail(`client ${client.clientId} is confidential but has no secret in the realm`);
    metadata.client_secret = client.secret;
  }
  return metadata;
}

const clientList = [...clients.values()].map(clientMetadata);

// ---- accounts ---------------------------------------------------------------------------------------

function standardClaims(user) {
  return {
    preferred_username: user.username,
    name: [user.firstName, user.lastName].filter(Boolean).join(' ') || user.username,
    given_name: user.firstName,
    family_name: user.lastName,
    email: user.email,
    email_verified: user.email ? user.emailVerified : undefined,
  };
}

function findUser(accountId) {
  const user = users.get(String(accountId).toLowerCase());
  return user && user.enabled ? user : undefined;
}

// ---- pages ------------------------------------------------------------------------------------------

const escape = (text) => String(text ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:22rem;margin:3rem auto}input,button{display:block;width:100%;margin:.4rem 0;padding:.5rem;box-sizing:border-box}.error{color:#b00020}</style>
</head><body><h1>${escape(title)}</h1>${body}</body></html>`;
}

function loginPage(uid, clientName, error) {
  return page('Sign in to KUMKM', `
<p>${escape(clientName)}</p>
${error ? `<p class="error" role="alert">${escape(error)}</p>` : ''}
<form id="login" method="post" action="${PREFIX}/interaction/${escape(uid)}/login" autocomplete="off">
<label>Username <input name="username" required autofocus></label>
<label>Password <input name="password" type="password" required></label>
<button type="submit">Sign in</button>
</form>
<form method="post" action="${PREFIX}/interaction/${escape(uid)}/abort"><button type="submit">Cancel</button></form>`);
}

// ---- the provider ------------------------------------------------------------------------------------

const allMapperClaims = new Set();
for (const mapper of [...scopes.values(), ...[...clients.values()].map((client) => client.protocolMappers ?? [])].flat()) {
  const name = mapper.config?.['claim.name'];
  if (name) allMapperClaims.add(name.split(/(?<!\\)\./)[0]);
}

const configuration = {
  clients: clientList,
  jwks,
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  claims: {
    openid: ['sub', ...allMapperClaims],
    profile: ['name', 'given_name', 'family_name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', ...scopes.keys()],
  conformIdTokenClaims: false,
  responseTypes: ['code', 'none'],
  async findAccount(ctx, sub) {
    const user = findUser(sub);
    if (!user) return undefined;
    return {
      accountId: user.username,
      async claims(use, scope) {
        const client = clients.get(ctx.oidc.client?.clientId);
        const requested = new Set(String(scope ?? '').split(' '));
        const mapped = client ? mappedClaims(client, user, requested, use === 'id_token' ? 'id.token' : 'userinfo.token') : {};
        return { ...standardClaims(user), ...mapped, sub: user.username };
      },
    };
  },
  features: {
    devInteractions: { enabled: false },
    userinfo: { enabled: false }, // access tokens are for the platform's audience only
    revocation: { enabled: true },
    introspection: { enabled: false },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    deviceFlow: { enabled: true, userCodeInputSource, userCodeConfirmSource, successSource },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      useGrantedResource: () => true,
      getResourceServerInfo(ctx, indicator, client) {
        if (indicator !== RESOURCE) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        const realmClient = clients.get(client.clientId);
        const audience = realmClient ? audienceOf(realmClient) : [];
        return {
          scope: [...scopes.keys()].join(' '),
          // One audience here; the access token customizer lists them all when a client has several.
          audience: audience[0] ?? client.clientId,
          accessTokenTTL: ACCESS_TOKEN_TTL,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  pkce: { required: (ctx, client) => client.clientAuthMethod === 'none' },
  formats: { customizers: { jwt: customizeAccessToken } },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  rotateRefreshToken: true,
  loadExistingGrant,
  interactions: { url: (ctx, interaction) => `${PREFIX}/interaction/${interaction.uid}` },
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    AuthorizationCode: 60,
    DeviceCode: 600,
    IdToken: ACCESS_TOKEN_TTL,
    RefreshToken: 1800, // Keycloak's default SSO session idle time
    Interaction: 600,
    Session: 36000,
    Grant: 36000,
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Sign-in error', `<p class="error" role="alert">${escape(out.error)}: ${escape(out.error_description)}</p>`);
  },
  clientBasedCORS(ctx, origin, client) {
    const realmClient = clients.get(client.clientId);
    const origins = realmClient?.webOrigins ?? [];
    if (origins.includes('*') || origins.includes(origin)) return true;
    if (origins.includes('+')) {
      return (realmClient.redirectUris ?? []).some((uri) => URL.parse(uri.replace(/\*$/, ''))?.origin === origin);
    }
    return false;
  },
};

// Access token claims: the identity contract, as the realm's mappers give it.
async function customizeAccessToken(ctx, token, jwt) {
  const realmClient = clients.get(token.clientId);
  const requested = new Set(String(token.scope ?? '').split(' '));
  let user;
  if (token.kind === 'ClientCredentials') {
    user = serviceAccountOf(token.clientId);
    if (!user) throw new errors.InvalidClient(`client ${token.clientId} has no service account user in the realm`);
    jwt.payload.sub = user.username;
  } else {
    user = findUser(token.accountId);
    if (!user) throw new errors.InvalidGrant('the account is disabled or gone');
  }
  const audience = realmClient ? audienceOf(realmClient) : [];
  if (audience.length > 1) jwt.payload.aud = audience;
  jwt.payload.azp = token.clientId;
  jwt.payload.typ = 'Bearer';
  Object.assign(jwt.payload, mappedClaims(realmClient, user, requested, 'access.token'));
}

// First-party consent: every client of the realm gets the scopes and resource it asks for.
async function loadExistingGrant(ctx) {
  const { client, session, params } = ctx.oidc;
  const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
  let grant = grantId ? await ctx.oidc.provider.Grant.find(grantId) : undefined;
  if (!clients.has(client.clientId) || !session.accountId) return grant;
  grant ??= new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
  grant.addOIDCScope(String(params.scope ?? 'openid'));
  grant.addOIDCClaims(['sub', ...allMapperClaims, 'name', 'given_name', 'family_name', 'preferred_username', 'email', 'email_verified']);
  grant.addResourceScope(RESOURCE, String(params.scope ?? ''));
  await grant.save();
  return grant;
}

async function userCodeInputSource(ctx, form, out, err) {
  let message = '<p>Enter the code shown on your device.</p>';
  if (err && (err.userCode || err.name === 'NoCodeError')) message = '<p class="error" role="alert">The code is wrong or expired. Try again.</p>';
  else if (err && err.name === 'AbortedError') message = '<p class="error" role="alert">The sign-in was cancelled.</p>';
  else if (err) message = '<p class="error" role="alert">The code could not be checked.</p>';
  ctx.body = page('Device sign-in', `${message}${form}<button type="submit" form="op.deviceInputForm">Continue</button>`);
}

async function userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
  ctx.body = page('Confirm the device', `
<p>${escape(client.clientName || client.clientId)} asks to sign in. Check that your device shows <code>${escape(userCode)}</code>.</p>
${form}<button type="submit" form="op.deviceConfirmForm">Continue</button>
<button type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Cancel</button>`);
}

async function successSource(ctx) {
  ctx.body = page('Signed in', '<p>Your device is signed in; you can close this page.</p>');
}

async function logoutSource(ctx, form) {
  ctx.body = page('Sign out', `${form}<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Signed out', '<p>You are signed out.</p>');
}

const provider = new Provider(args.issuer, configuration);
provider.proxy = true;

// Keycloak's Direct Access Grants: the resource owner password grant, for clients that enable it only
// (the token endpoint refuses a grant type a client does not list).
provider.registerGrantType(PASSWORD_GRANT, async (ctx) => {
  const { client, params } = ctx.oidc;
  if (!params.username || !params.password) throw new errors.InvalidRequest('username and password are required');
  const user = findUser(params.username);
  if (!user || !user.password || !user.password(String(params.password))) {
    throw new errors.CustomOIDCProviderError('invalid_grant', 'Invalid user credentials');
  }
  const realmClient = clients.get(client.clientId);
  const requested = String(params.scope ?? '').split(' ').filter(Boolean);
  const allowed = new Set(configuration.scopes);
  const unknown = requested.filter((scope) => !allowed.has(scope));
  if (unknown.length) throw new errors.InvalidScope('requested scope is not allowed', unknown.join(' '));
  const scope = requested.join(' ');

  const grant = new provider.Grant({ clientId: client.clientId, accountId: user.username });
  grant.addOIDCScope(scope || 'openid');
  grant.addResourceScope(RESOURCE, scope);
  const grantId = await grant.save();

  const at = new provider.AccessToken({ accountId: user.username, client, grantId, gty: PASSWORD_GRANT });
  at.resourceServer = new provider.ResourceServer(RESOURCE, await configuration.features.resourceIndicators.getResourceServerInfo(ctx, RESOURCE, client));
  at.scope = scope || undefined;
  ctx.oidc.entity('AccessToken', at);
  const accessToken = await at.save();

  const rt = new provider.RefreshToken({
    accountId: user.username, client, grantId, gty: PASSWORD_GRANT, scope: scope || 'openid', resource: RESOURCE, rotations: 0,
  });
  const refreshToken = await rt.save();

  let idToken;
  if (requested.includes('openid')) {
    const account = await configuration.findAccount(ctx, user.username);
    const token = new provider.IdToken(await account.claims('id_token', scope), { ctx });
    token.scope = scope;
    idToken = await token.issue({ use: 'idtoken' });
  }
  void realmClient;
  ctx.body = {
    access_token: accessToken,
    expires_in: at.expiration,
    token_type: 'Bearer',
    refresh_token: refreshToken,
    ...(idToken ? { id_token: idToken } : {}),
    ...(scope ? { scope } : {}),
  };
}, new Set(['username', 'password', 'scope']));

// Keycloak-style wildcard redirect URIs (`http://127.0.0.1:8000/*`).
{
  const exactly = provider.Client.prototype.redirectUriAllowed;
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
    if (exactly.call(this, value)) return true;
    return (wildcardRedirects.get(this.clientId) ?? []).some((prefix) => value.startsWith(prefix));
  };
}

for (const event of ['grant.error', 'authorization.error', 'end_session.error', 'backchannel.error', 'jwks.error', 'discovery.error']) {
  provider.on(event, (ctx, error) => log(event, { client: ctx.oidc?.client?.clientId, error: error.error ?? error.name, description: error.error_description }));
}
provider.on('server_error', (ctx, error) => log('server_error', { client: ctx.oidc?.client?.clientId, message: error.message, stack: error.stack }));
provider.on('grant.success', (ctx) => log('grant.success', { client: ctx.oidc.client?.clientId, grant_type: ctx.oidc.params?.grant_type }));

// ---- the login interaction ---------------------------------------------------------------------------

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new errors.InvalidRequest('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

// `formTarget`: the client's redirect URI (already checked against the client's registration). A browser
// applies form-action to the whole redirect chain after the login form's POST, which ends at the client.
function send(res, status, html, formTarget) {
  const origin = formTarget ? URL.parse(formTarget)?.origin : undefined;
  const formAction = origin && origin !== 'null' ? `'self' ${origin}` : "'self'";
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'x-frame-options': 'DENY',
    'content-security-policy': `default-src 'none'; style-src 'unsafe-inline'; form-action ${formAction}`,
  });
  res.end(html);
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');
  const client = await provider.Client.find(details.params.client_id);
  const clientName = client?.clientName ?? details.params.client_id;
  if (req.method === 'GET' && action === undefined) {
    if (details.prompt.name === 'login') return send(res, 200, loginPage(uid, clientName), details.params.redirect_uri);
    // Consent for a realm client is granted in loadExistingGrant; anything left is finished as is.
    const grant = await loadExistingGrantFor(details);
    return provider.interactionFinished(req, res, { consent: { grantId: grant } }, { mergeWithLastSubmission: true });
  }
  if (req.method === 'POST' && action === 'login') {
    const form = await readForm(req);
    const user = findUser(form.get('username') ?? '');
    if (!user || !user.password || user.serviceAccountClientId || !user.password(form.get('password') ?? '')) {
      log('login.refused', { client: details.params.client_id });
      return send(res, 401, loginPage(uid, clientName, 'Invalid username or password.'), details.params.redirect_uri);
    }
    log('login.success', { client: details.params.client_id });
    return provider.interactionFinished(req, res, { login: { accountId: user.username } }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'abort') {
    return provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'the person cancelled the sign-in' }, { mergeWithLastSubmission: false });
  }
  return send(res, 405, page('Not allowed', '<p>Method not allowed.</p>'));
}

async function loadExistingGrantFor(details) {
  const { accountId } = details.session;
  const grant = details.grantId ? await provider.Grant.find(details.grantId) : new provider.Grant({ accountId, clientId: details.params.client_id });
  const missing = details.prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, values] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, values.join(' '));
  return grant.save();
}

const callback = provider.callback();
const server = createServer(async (req, res) => {
  if (PREFIX) {
    const url = req.url ?? '/';
    if (url !== PREFIX && !url.startsWith(`${PREFIX}/`) && !url.startsWith(`${PREFIX}?`)) {
      return send(res, 404, page('Not found', `<p>Everything is under ${escape(PREFIX)}.</p>`));
    }
    // As a mounted app: oidc-provider builds its URLs from originalUrl minus url.
    req.originalUrl = url;
    req.url = url.slice(PREFIX.length) || '/';
  }
  const match = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|abort))?\/?(?:\?.*)?$/.exec(req.url ?? '');
  if (!match) return callback(req, res);
  try {
    return await interaction(req, res, match[1], match[2]);
  } catch (error) {
    const status = error.statusCode ?? 500;
    if (status >= 500) log('interaction.error', { message: error.message, stack: error.stack });
    return send(res, status, page('Sign-in error', `<p class="error" role="alert">${escape(error.error ?? 'server_error')}: ${escape(error.error_description ?? 'the sign-in failed')}</p>`));
  }
});

server.listen(Number(args.port), args.host, () => {
  log('listening', { issuer: args.issuer, port: Number(args.port), clients: clients.size, users: users.size, kid: jwks.keys[0].kid });
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
