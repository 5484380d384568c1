import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../http/validation.ts';
import type { ToolRegistry } from './tool-registry.ts';

const discoverQuery = z.object({ q: z.string().max(500).default(''), limit: z.coerce.number().int().min(1).max(200).default(20) });

export function registerToolRoutes(app: FastifyInstance, registry: ToolRegistry): void {
  for (const url of ['/v1/tools', '/tools']) {
    app.get(url, { config: { scope: 'tools:read' } }, async () => ({ tools: await registry.listCards() }));
  }
  app.get('/discover', { config: { scope: 'tools:read' } }, async (request) => {
    const { q, limit } = parseInput(discoverQuery, request.query, 'query');
    return { query: q, tools: (await registry.discover(q)).slice(0, limit) };
  });
  app.post('/v1/providers', { config: { scope: 'providers:admin' } }, async (request, reply) => {
    const registered = await registry.registerProvider(request.body);
    return reply.status(201).send(registered);
  });
}
