import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuiltApp } from '../../src/app.ts';
import { buildTestApp, send } from '../helpers/app.ts';
import { json, startToolServer } from '../helpers/tool-server.ts';

/**
 * OpenAPI providers end to end: a document registered through POST /v1/providers, its
 * operations called through /v1/call against a real server on loopback, each param arriving
 * where the operation declared it.
 */

const info = { title: 'Pets', version: '1.0.0' };
const ok = { '200': { description: 'ok' } };

const petstore30 = {
  openapi: '3.0.3',
  info,
  components: {
    schemas: {
      NewPet: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, tag: { type: 'string', nullable: true } }, additionalProperties: false },
    },
    parameters: { PetId: { name: 'petId', in: 'path', required: true, schema: { type: 'string' } } },
  },
  paths: {
    '/pets': {
      get: {
        operationId: 'listPets',
        summary: 'List pets',
        parameters: [
          { name: 'limit', in: 'query', schema: { type: 'integer', maximum: 100 } },
          { name: 'tags', in: 'query', schema: { type: 'array', items: { type: 'string' } } },
        ],
        responses: ok,
      },
      post: {
        operationId: 'createPet',
        summary: 'Create a pet',
        parameters: [{ name: 'X-Request-Id', in: 'header', required: true, schema: { type: 'string' } }],
        requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/NewPet' } } } },
        responses: ok,
      },
    },
    '/pets/{petId}': {
      parameters: [{ $ref: '#/components/parameters/PetId' }],
      get: { operationId: 'showPetById', description: 'One pet, by id', parameters: [{ name: 'verbose', in: 'query', schema: { type: 'boolean' } }], responses: ok },
      head: { responses: ok },
      delete: { operationId: 'deletePet', responses: ok },
    },
  },
};

const echo =
  (status = 200) =>
  (request: { method: string; path: string }, res: import('node:http').ServerResponse) =>
    json(res, status, { seen: `${request.method} ${request.path}` });

describe('OpenAPI providers', () => {
  let built: BuiltApp;
  let tools: Awaited<ReturnType<typeof startToolServer>>;

  beforeAll(async () => {
    tools = await startToolServer({
      'GET /pets': echo(),
      'POST /pets': echo(201),
      'GET /pets/*': echo(),
      'DELETE /pets/*': echo(),
      'POST /v3/items': echo(),
      'POST /v2/orders': echo(),
      'POST /v2/login': echo(),
      'GET /docs/petstore.json': (_request, res) => json(res, 200, { ...petstore30, servers: [{ url: '/api' }] }),
      'GET /docs/petstore.yaml': (_request, res) => {
        res.writeHead(200, { 'content-type': 'application/yaml' });
        res.end(
          [
            'openapi: 3.0.3',
            'info: {title: Pets, version: "1"}',
            'paths:',
            '  /pets:',
            '    get:',
            '      operationId: listPets',
            '      responses:',
            "        '200': {description: ok}",
            '',
          ].join('\n'),
        );
      },
      // Each level names the one below twice: a few hundred bytes that expand past any memory.
      'GET /docs/bomb.yaml': (_request, res) => {
        const levels = Array.from({ length: 40 }, (_, i) => `  l${i + 1}: &l${i + 1} [*l${i}, *l${i}]`);
        res.writeHead(200, { 'content-type': 'application/yaml' });
        res.end(['openapi: 3.0.3', 'info: {title: Bomb, version: "1"}', 'paths: {}', 'x-bomb:', '  l0: &l0 [lol]', ...levels, ''].join('\n'));
      },
      'GET /docs/huge.json': (_request, res) => json(res, 200, { openapi: '3.0.3', info, paths: {}, padding: 'x'.repeat(6_000_000) }),
      'GET /docs/missing.json': (_request, res) => json(res, 404, { secret: 'internal page' }),
      'GET /api/pets': echo(),
    });
    built = await buildTestApp();
  });
  afterAll(async () => {
    await built.app.close();
    await tools.close();
  });

  const register = (body: Record<string, unknown>) => send(built.app, 'POST', '/v1/providers', body);
  const call = (tool: string, params: Record<string, unknown>) => send(built.app, 'POST', '/v1/call', { tool, params, agent_id: 'agent-1' });
  const last = () => tools.requests.at(-1);

  it('imports a 3.0 document: one tool per operation, GET and HEAD without side effects', async () => {
    const res = await register({ name: 'pets', openapi: petstore30, base_url: tools.url, tools: [{ name: 'deletePet', risk: 'high', description: 'Delete for good' }] });
    expect(res.status).toBe(201);
    expect(res.body.kind).toBe('openapi');
    const cards = Object.fromEntries(res.body.tools.map((card: { name: string }) => [card.name, card]));
    expect(Object.keys(cards)).toEqual(['listPets', 'createPet', 'showPetById', 'deletePet', 'head_pets_petId']);
    expect(cards['listPets']).toMatchObject({ key: 'pets.listPets', description: 'List pets', side_effects: false, idempotent: true, transport: 'http' });
    expect(cards['head_pets_petId']).toMatchObject({ side_effects: false });
    expect(cards['createPet']).toMatchObject({ side_effects: true, idempotent: false });
    expect(cards['createPet'].input_schema).toMatchObject({ required: ['X-Request-Id', 'body'], properties: { body: { required: ['name'] } } });
    expect(cards['deletePet']).toMatchObject({ risk: 'high', description: 'Delete for good', side_effects: true });
    // The cards are what GET /v1/tools lists.
    const listed = await send(built.app, 'GET', '/v1/tools?q=pets');
    expect(listed.body.tools.map((t: { key: string }) => t.key)).toContain('pets.showPetById');
  });

  it('sends each param where the operation wants it: path (encoded), query, header, JSON body', async () => {
    const shown = await call('pets.showPetById', { petId: 'rex/1 b', verbose: true });
    expect(shown.status).toBe(200);
    expect(shown.body).toMatchObject({ status: 'executed', result: { seen: 'GET /pets/rex%2F1%20b' } });
    expect(last()).toMatchObject({ method: 'GET', path: '/pets/rex%2F1%20b', query: { verbose: 'true' }, body: undefined });

    await call('pets.listPets', { limit: 5, tags: ['a', 'b'] });
    expect(last()).toMatchObject({ method: 'GET', path: '/pets' });
    expect(new URLSearchParams(last()?.search).getAll('tags')).toEqual(['a', 'b']);
    expect(new URLSearchParams(last()?.search).get('limit')).toBe('5');

    const created = await call('pets.createPet', { 'X-Request-Id': 'req-42', body: { name: 'Rex', tag: null } });
    expect(created.body).toMatchObject({ status: 'executed', result: { seen: 'POST /pets' } });
    expect(last()).toMatchObject({ method: 'POST', path: '/pets', query: {}, body: { name: 'Rex', tag: null } });
    expect(last()?.headers).toMatchObject({ 'x-request-id': 'req-42', 'content-type': 'application/json' });
  });

  it('checks params against the imported schema before anything is sent', async () => {
    const before = tools.requests.length;
    const missingBody = await call('pets.createPet', { 'X-Request-Id': 'r' });
    expect(missingBody.status).toBe(400);
    const stray = await call('pets.listPets', { limit: 500 });
    expect(stray.status).toBe(400);
    expect(stray.body.error.message).toMatch(/params\.limit/);
    expect(tools.requests.length).toBe(before);
  });

  it('imports a 3.1 document and a Swagger 2.0 one (body and formData)', async () => {
    const v31 = await register({
      name: 'items',
      base_url: `${tools.url}/v3`,
      openapi: {
        openapi: '3.1.0',
        info,
        paths: {
          '/items': {
            post: {
              operationId: 'createItem',
              parameters: [{ name: 'dry_run', in: 'query', schema: { type: 'boolean' } }],
              requestBody: {
                required: true,
                content: { 'application/json': { schema: { type: 'object', properties: { name: { type: ['string', 'null'] } }, required: ['name'] } } },
              },
              responses: ok,
            },
          },
        },
      },
    });
    expect(v31.status).toBe(201);
    const item = await call('items.createItem', { dry_run: true, body: { name: null } });
    expect(item.body.status).toBe('executed');
    expect(last()).toMatchObject({ path: '/v3/items', query: { dry_run: 'true' }, body: { name: null } });

    const v20 = await register({
      name: 'shop',
      openapi: {
        swagger: '2.0',
        info,
        host: tools.url.replace('http://', ''),
        basePath: '/v2',
        schemes: ['http'],
        definitions: { Order: { type: 'object', properties: { qty: { type: 'integer' } }, required: ['qty'] } },
        paths: {
          '/orders': {
            post: {
              operationId: 'placeOrder',
              parameters: [
                { name: 'order', in: 'body', required: true, schema: { $ref: '#/definitions/Order' } },
                { name: 'ids', in: 'query', type: 'array', items: { type: 'string' } },
              ],
              responses: ok,
            },
          },
          '/login': {
            post: {
              operationId: 'login',
              consumes: ['application/x-www-form-urlencoded'],
              parameters: [{ name: 'user', in: 'formData', type: 'string', required: true }],
              responses: ok,
            },
          },
        },
      },
    });
    expect(v20.status).toBe(201);
    expect((await call('shop.placeOrder', { ids: ['a', 'b'], body: { qty: 2 } })).body.status).toBe('executed');
    // Swagger 2.0 joins query lists with commas unless told otherwise; the base URL is host + basePath.
    expect(last()).toMatchObject({ path: '/v2/orders', query: { ids: 'a,b' }, body: { qty: 2 } });
    expect((await call('shop.login', { body: { user: 'ann b' } })).body.status).toBe('executed');
    expect(last()).toMatchObject({ path: '/v2/login', body: 'user=ann+b' });
    expect(last()?.headers['content-type']).toBe('application/x-www-form-urlencoded');
  });

  it('reads a document by URL (JSON or YAML), its relative server against that URL', async () => {
    const res = await register({ name: 'remote', openapi: `${tools.url}/docs/petstore.json` });
    expect(res.status).toBe(201);
    const listed = await call('remote.listPets', { limit: 1 });
    expect(listed.body, JSON.stringify(listed.body)).toMatchObject({ status: 'executed' });
    expect(last()).toMatchObject({ path: '/api/pets', query: { limit: '1' } });

    const yaml = await register({ name: 'yamlpets', openapi: `${tools.url}/docs/petstore.yaml`, base_url: tools.url });
    expect(yaml.status).toBe(201);
    expect(yaml.body.tools.map((t: { key: string }) => t.key)).toEqual(['yamlpets.listPets']);
  });

  it('refuses a document URL that fails, is too large, or points at a metadata address, without echoing it', async () => {
    const missing = await register({ name: 'r2', openapi: `${tools.url}/docs/missing.json`, base_url: tools.url });
    expect(missing.status).toBe(422);
    expect(missing.body.error).toMatchObject({ code: 'openapi_unreachable', message: expect.stringMatching(/answered HTTP 404/) });
    expect(missing.text).not.toContain('internal page');

    const huge = await register({ name: 'r3', openapi: `${tools.url}/docs/huge.json`, base_url: tools.url });
    expect(huge.status).toBe(422);
    expect(huge.body.error.message).toMatch(/more than 5000000 bytes/);

    const started = Date.now();
    const bomb = await register({ name: 'r5', openapi: `${tools.url}/docs/bomb.yaml`, base_url: tools.url });
    expect(bomb.status).toBe(400);
    expect(bomb.body.error.message).toMatch(/expands to too many nodes/);
    expect(Date.now() - started).toBeLessThan(5_000);

    const metadata = await register({ name: 'r4', openapi: 'http://169.254.169.254/latest/openapi.json', base_url: tools.url });
    expect(metadata.status).toBe(400);
    expect(metadata.body.error).toMatchObject({ code: 'forbidden_address', details: { field: 'openapi' } });
  });

  it('answers a bad document with 400 and where it is wrong', async () => {
    const bad = await register({ name: 'bad', base_url: tools.url, openapi: { openapi: '3.0.3', info, paths: { '/a': { get: { responses: { '200': { description: 5 } } } } } } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'invalid_openapi', details: { location: '#/paths/~1a/get/responses/200/description' } });

    const external = await register({
      name: 'bad',
      base_url: tools.url,
      openapi: {
        openapi: '3.0.3',
        info,
        paths: { '/a': { post: { requestBody: { content: { 'application/json': { schema: { $ref: `${tools.url}/docs/petstore.json` } } } }, responses: ok } } },
      },
    });
    expect(external.status).toBe(400);
    expect(external.body.error).toMatchObject({ code: 'invalid_openapi', details: { location: '#/paths/~1a/post/requestBody/content/application~1json/schema/$ref' } });
    expect(tools.requests.filter((r) => r.path === '/docs/petstore.json')).toHaveLength(1); // only the URL import above fetched it

    const notOpenapi = await register({ name: 'bad', base_url: tools.url, openapi: { hello: 'world' } });
    expect(notOpenapi.status).toBe(400);
    expect(notOpenapi.body.error.code).toBe('invalid_openapi');
  });

  it('refuses an override naming no operation, and a document with no server and no base_url', async () => {
    const unknown = await register({ name: 'pets2', base_url: tools.url, openapi: petstore30, tools: [{ name: 'adoptPet', risk: 'low' }] });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.details).toMatchObject({ unknown_tools: ['adoptPet'] });

    const noServer = await register({ name: 'pets2', openapi: petstore30 });
    expect(noServer.status).toBe(400);
    expect(noServer.body.error.details).toEqual({ field: 'base_url' });
    expect((await send(built.app, 'GET', '/v1/tools?q=pets2')).body.tools).toEqual([]);
  });

  it('keeps the imported tools, with their placement, across a restart', async () => {
    const restarted = await buildTestApp({}, built.store);
    try {
      const res = await send(restarted.app, 'POST', '/v1/call', { tool: 'pets.showPetById', params: { petId: 'after restart' }, agent_id: 'a' });
      expect(res.body).toMatchObject({ status: 'executed', result: { seen: 'GET /pets/after%20restart' } });
      const listed = await send(restarted.app, 'GET', '/v1/tools?q=deletePet');
      expect(listed.body.tools[0]).toMatchObject({ key: 'pets.deletePet', risk: 'high' });
    } finally {
      await restarted.app.close();
    }
  });

  it('is documented in /openapi.json as a provider kind', async () => {
    const doc = JSON.parse((await built.app.inject({ method: 'GET', url: '/openapi.json' })).body);
    const body = doc.paths['/v1/providers'].post.requestBody.content['application/json'].schema;
    const kinds = (body.anyOf ?? body.oneOf) as Array<{ properties: Record<string, unknown> }>;
    expect(kinds.some((k) => 'openapi' in k.properties && 'base_url' in k.properties)).toBe(true);
  });
});
