import { describe, expect, it } from 'vitest';
import { OPENAPI_LIMITS, loadOpenApiDocument, OpenApiDocumentError } from '../../src/tools/openapi-document.ts';
import { MAX_OPERATIONS, documentBaseUrl, operationsToTools, toolName } from '../../src/tools/openapi-tools.ts';
import { createParamValidator } from '../../src/tools/param-validator.ts';

const info = { title: 'test', version: '1.0.0' };
const ok = { '200': { description: 'ok' } };

async function convert(doc: Record<string, unknown>) {
  return operationsToTools(await loadOpenApiDocument(doc, OPENAPI_LIMITS));
}

async function documentError(doc: Record<string, unknown>, limits = OPENAPI_LIMITS): Promise<OpenApiDocumentError> {
  const error: unknown = await loadOpenApiDocument(doc, limits)
    .then((loaded) => operationsToTools(loaded))
    .catch((e: unknown) => e);
  expect(error).toBeInstanceOf(OpenApiDocumentError);
  return error as OpenApiDocumentError;
}

describe('tool names', () => {
  it('fit the key rule: operationId cleaned, else method and path', () => {
    expect(toolName('listPets', 'GET', '/pets')).toBe('listPets');
    expect(toolName('pets.list (v2)', 'GET', '/pets')).toBe('pets_list_v2');
    expect(toolName('__x', 'GET', '/pets')).toBe('x');
    expect(toolName(undefined, 'GET', '/pets/{petId}/photos')).toBe('get_pets_petId_photos');
    expect(toolName('...', 'DELETE', '/')).toBe('delete');
    expect(toolName('a'.repeat(100), 'GET', '/')).toHaveLength(64);
  });

  it('are made unique within a document', async () => {
    const { tools } = await convert({
      openapi: '3.0.3',
      info,
      paths: { '/a': { get: { operationId: 'op', responses: ok }, post: { operationId: 'op', responses: ok } }, '/b': { get: { operationId: 'op', responses: ok } } },
    });
    expect(tools.map((t) => t.name)).toEqual(['op', 'op_2', 'op_3']);
  });
});

describe('OpenAPI 3.0', () => {
  const petstore = {
    openapi: '3.0.3',
    info,
    servers: [{ url: 'https://{region}.pets.example/v1', variables: { region: { default: 'eu' } } }],
    components: {
      schemas: {
        Pet: {
          type: 'object',
          required: ['name'],
          properties: { name: { type: 'string' }, tag: { type: 'string', nullable: true }, age: { type: 'integer', minimum: 0, exclusiveMinimum: true } },
        },
        Node: { type: 'object', properties: { value: { type: 'string' }, children: { type: 'array', items: { $ref: '#/components/schemas/Node' } } } },
      },
      parameters: { PetId: { name: 'petId', in: 'path', required: true, schema: { type: 'string' }, description: 'The pet' } },
    },
    paths: {
      '/pets/{petId}': {
        parameters: [{ $ref: '#/components/parameters/PetId' }],
        get: {
          operationId: 'getPet',
          summary: 'Read one pet',
          description: 'Returns the pet with its tags.',
          parameters: [
            { name: 'fields', in: 'query', schema: { type: 'array', items: { type: 'string' } }, explode: false },
            { name: 'X-Request-Id', in: 'header', schema: { type: 'string' } },
            { name: 'Authorization', in: 'header', schema: { type: 'string' } },
            { name: 'session', in: 'cookie', schema: { type: 'string' } },
          ],
          responses: ok,
        },
        put: {
          summary: 'Replace a pet',
          requestBody: { required: true, content: { 'application/json': { schema: { $ref: '#/components/schemas/Pet' } } } },
          responses: ok,
        },
      },
      '/trees': { post: { operationId: 'plantTree', requestBody: { content: { 'application/json': { schema: { $ref: '#/components/schemas/Node' } } } }, responses: ok } },
      '/upload': { post: { operationId: 'upload', requestBody: { required: true, content: { 'image/png': { schema: { type: 'string' } } } }, responses: ok } },
    },
  };

  it('turns parameters and the body into one input schema, and places each', async () => {
    const { tools, skipped } = await convert(petstore);
    const get = tools.find((t) => t.name === 'getPet');
    expect(get).toMatchObject({
      method: 'GET',
      path: '/pets/{petId}',
      description: 'Read one pet\n\nReturns the pet with its tags.',
      side_effects: false,
      idempotent: true,
      placement: {
        params: { petId: { in: 'path', name: 'petId' }, fields: { in: 'query', name: 'fields', delimiter: ',' }, 'X-Request-Id': { in: 'header', name: 'X-Request-Id' } },
      },
    });
    // Authorization and cookies are not parameters an agent sets.
    expect(Object.keys(get?.input_schema['properties'] as object)).toEqual(['petId', 'fields', 'X-Request-Id']);
    expect(get?.input_schema).toMatchObject({
      type: 'object',
      required: ['petId'],
      additionalProperties: false,
      properties: { petId: { type: 'string', description: 'The pet' } },
    });

    const put = tools.find((t) => t.method === 'PUT');
    expect(put).toMatchObject({ name: 'put_pets_petId', side_effects: true, idempotent: false, placement: { body: { property: 'body', encoding: 'json' } } });
    expect(put?.input_schema).toMatchObject({
      required: ['petId', 'body'],
      properties: { body: { type: 'object', properties: { tag: { type: ['string', 'null'] }, age: { type: 'integer', exclusiveMinimum: 0 } } } },
    });
    expect(skipped).toEqual([{ operation: 'POST /upload', reason: expect.stringMatching(/image\/png/) }]);
  });

  it('cuts a recursive schema where it repeats, giving a schema the validator compiles', async () => {
    const { tools } = await convert(petstore);
    const tree = tools.find((t) => t.name === 'plantTree');
    const body = (tree?.input_schema['properties'] as Record<string, any>)['body'];
    expect(body.properties.children.items).toEqual({ description: expect.stringMatching(/Recursive/) });
    const validator = createParamValidator();
    for (const tool of tools) validator.assertValidSchema(tool.input_schema, tool.name);
    expect(() => validator.assertValidParams('t', tree!.input_schema, { body: { value: 'a', children: [{ value: 'b' }] } })).not.toThrow();
    expect(() => validator.assertValidParams('t', tools.find((t) => t.method === 'PUT')!.input_schema, { petId: '1', body: { name: 'x', age: 0 } })).toThrow(
      /exclusiveMinimum|must be >/,
    );
  });

  it('takes the base URL from the first server, variables at their defaults', () => {
    expect(documentBaseUrl(petstore)).toBe('https://eu.pets.example/v1');
    expect(documentBaseUrl({ openapi: '3.0.3', servers: [{ url: '/api' }] }, 'http://docs.internal/spec.json')).toBe('http://docs.internal/api');
    expect(documentBaseUrl({ openapi: '3.0.3', servers: [{ url: '/api' }] })).toBeUndefined();
    expect(documentBaseUrl({ swagger: '2.0', host: 'api.example', basePath: '/v2', schemes: ['http', 'https'] })).toBe('https://api.example/v2');
  });
});

describe('OpenAPI 3.1 and Swagger 2.0', () => {
  it('keeps 3.1 schemas in the 2020-12 dialect', async () => {
    const { tools } = await convert({
      openapi: '3.1.0',
      info,
      paths: {
        '/items': {
          post: {
            operationId: 'createItem',
            parameters: [{ name: 'filter', in: 'query', style: 'deepObject', schema: { type: 'object' } }],
            requestBody: {
              content: {
                'application/json': { schema: { type: 'object', properties: { name: { type: ['string', 'null'] }, tags: { type: 'array', prefixItems: [{ const: 'a' }] } } } },
              },
            },
            responses: ok,
          },
        },
      },
    });
    expect(tools[0]?.input_schema).toMatchObject({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      properties: { body: { properties: { name: { type: ['string', 'null'] } } } },
    });
    expect(tools[0]?.placement.params['filter']).toEqual({ in: 'query', name: 'filter', style: 'deepObject' });
    createParamValidator().assertValidSchema(tools[0]!.input_schema, 'createItem');
  });

  it('reads 2.0 body, formData and collectionFormat parameters', async () => {
    const { tools } = await convert({
      swagger: '2.0',
      info,
      definitions: { Order: { type: 'object', properties: { qty: { type: 'integer' } } } },
      paths: {
        '/orders': {
          post: {
            operationId: 'createOrder',
            parameters: [
              { name: 'order', in: 'body', required: true, schema: { $ref: '#/definitions/Order' } },
              { name: 'tags', in: 'query', type: 'array', items: { type: 'string' } },
              { name: 'ids', in: 'query', type: 'array', items: { type: 'string' }, collectionFormat: 'multi' },
            ],
            responses: ok,
          },
        },
        '/login': {
          post: {
            operationId: 'login',
            consumes: ['application/x-www-form-urlencoded'],
            parameters: [
              { name: 'user', in: 'formData', type: 'string', required: true },
              { name: 'remember', in: 'formData', type: 'boolean' },
            ],
            responses: ok,
          },
        },
      },
    });
    const [create, login] = tools;
    expect(create?.input_schema).toMatchObject({ required: ['body'], properties: { body: { type: 'object', properties: { qty: { type: 'integer' } } }, tags: { type: 'array' } } });
    expect(create?.placement).toEqual({
      params: { tags: { in: 'query', name: 'tags', delimiter: ',' }, ids: { in: 'query', name: 'ids' } },
      body: { property: 'body', encoding: 'json' },
    });
    expect(login?.placement.body).toEqual({ property: 'body', encoding: 'form' });
    expect(login?.input_schema).toMatchObject({
      required: ['body'],
      properties: { body: { required: ['user'], properties: { user: { type: 'string' }, remember: { type: 'boolean' } } } },
    });
  });
});

describe('documents refused, with where', () => {
  it('names the location of a schema violation', async () => {
    const error = await documentError({ openapi: '3.0.3', info, paths: { '/a': { get: { parameters: [{ name: 'q', in: 'nowhere', schema: {} }], responses: ok } } } });
    expect(error.statusCode).toBe(400);
    expect(error.details).toMatchObject({ location: expect.stringMatching(/^#\/paths\/~1a\/get\/parameters\/0/) });
  });

  it('refuses an external $ref (a URL or a file) before anything reads it', async () => {
    for (const ref of ['http://169.254.169.254/latest/meta-data', '/etc/passwd', 'other.yaml#/Pet']) {
      const error = await documentError({
        openapi: '3.0.3',
        info,
        paths: { '/a': { post: { requestBody: { content: { 'application/json': { schema: { $ref: ref } } } }, responses: ok } } },
      });
      expect(error.message).toMatch(/External \$ref/);
      expect(error.details).toEqual({ location: '#/paths/~1a/post/requestBody/content/application~1json/schema/$ref' });
    }
  });

  it('points at a $ref whose target is missing, without paths of this server', async () => {
    const error = await documentError({ openapi: '3.0.3', info, paths: { '/a': { get: { responses: { '200': { $ref: '#/components/responses/Nope' } } } } } });
    expect(error.details).toMatchObject({ location: '#/paths/~1a/get/responses/200' });
    expect(JSON.stringify(error)).not.toContain(process.cwd());
  });

  it('refuses a small document that expands hugely through $refs, quickly', async () => {
    const schemas: Record<string, unknown> = { L0: { type: 'string' } };
    for (let i = 1; i <= 40; i++)
      schemas[`L${i}`] = { type: 'object', properties: { a: { $ref: `#/components/schemas/L${i - 1}` }, b: { $ref: `#/components/schemas/L${i - 1}` } } };
    const started = Date.now();
    const error = await documentError({ openapi: '3.0.3', info, components: { schemas }, paths: {} });
    expect(error.message).toMatch(/expands to too many nodes/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('refuses a schema nested too deep and too many operations', async () => {
    let deep: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 80; i++) deep = { type: 'object', properties: { x: deep } };
    const tooDeep = await documentError({
      openapi: '3.0.3',
      info,
      paths: { '/a': { post: { requestBody: { content: { 'application/json': { schema: deep } } }, responses: ok } } },
    });
    expect(tooDeep.message).toMatch(/nested deeper than 64/);

    const paths = Object.fromEntries(Array.from({ length: MAX_OPERATIONS + 1 }, (_, i) => [`/p${i}`, { get: { responses: ok } }]));
    const tooMany = await documentError({ openapi: '3.0.3', info, paths });
    expect(tooMany.message).toMatch(/501 operations; a provider holds at most 500/);
  });

  it('refuses what is not an OpenAPI document', async () => {
    expect((await documentError({ hello: 'world' })).message).toMatch(/Not an OpenAPI 3.x or Swagger 2.0 document/);
    expect((await documentError({ openapi: '4.0.0', info, paths: {} })).message).toMatch(/Unsupported OpenAPI version/);
  });
});
