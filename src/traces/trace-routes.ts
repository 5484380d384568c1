import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { NotFoundError, ValidationError } from '../errors.ts';
import { errorResponses } from '../http/error-schema.ts';
import { traceCallParams, traceDetailAnswerSchema, traceExportQuery, traceListAnswerSchema, traceListQuery } from './trace-schemas.ts';
import type { TraceEvent } from './trace-recorder.ts';
import type { CallDetailsReader, CallSummary, TraceFilters, TracesRepository } from './traces-repository.ts';
import type { KeyIdentity } from '../auth/keyring.ts';

function encodeCursor(row: { cursor_at: string; call_id: string }): string {
  return Buffer.from(JSON.stringify({ created_at: row.cursor_at, id: row.call_id })).toString('base64url');
}

const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$/;

function decodeCursor(cursor: string): TraceFilters['before'] {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { created_at?: unknown; id?: unknown };
    if (typeof parsed.created_at === 'string' && typeof parsed.id === 'string' && ISO_TIMESTAMP.test(parsed.created_at) && parsed.id.length <= 100) {
      return { created_at: parsed.created_at, id: parsed.id };
    }
  } catch {
    // fall through to the 400 below
  }
  throw new ValidationError('Invalid cursor: pass back the next_cursor of a previous page', { field: 'cursor' });
}

interface ExportRecord {
  summary: CallSummary;
  request: unknown;
  answer: unknown;
  events: TraceEvent[];
}

/** The shapes observability tools ingest: LangSmith runs, Helicone custom-log records. */
function exportShape(format: 'json' | 'jsonl' | 'langsmith' | 'helicone', record: ExportRecord): unknown {
  const { summary, request, answer, events } = record;
  const req = request as { params?: unknown } | null;
  const ans = answer as { result?: unknown; error?: string } | null;
  if (format === 'langsmith') {
    return {
      id: summary.call_id,
      name: summary.tool,
      run_type: 'tool',
      start_time: summary.created_at,
      end_time: summary.finished_at,
      inputs: { params: req?.params ?? {} },
      outputs: ans ? { status: summary.status, result: ans.result ?? null } : null,
      error: ans?.error ?? null,
      extra: { metadata: { agent_id: summary.agent_id, attempts: summary.attempts, idempotency_key: summary.idempotency_key } },
      events: events.map((e) => ({ name: e.step, time: e.at, kwargs: { status: e.status, ...e.detail } })),
    };
  }
  if (format === 'helicone') {
    return {
      providerRequest: { url: `invoke://${summary.tool}`, json: req?.params ?? {}, meta: { agent_id: summary.agent_id, call_id: summary.call_id } },
      providerResponse: { json: ans ?? {}, status: summary.status === 'executed' ? 200 : 500, headers: {} },
      timing: { startTime: summary.created_at, endTime: summary.finished_at ?? summary.created_at },
    };
  }
  return { ...summary, request, answer, events };
}

/** A key without full access sees the calls it made, not every key's. */
function ownCallsOnly(identity: KeyIdentity): string | undefined {
  return identity.fullAccess ? undefined : identity.id;
}

export function registerTraceRoutes(app: FastifyInstance, traces: TracesRepository, calls: CallDetailsReader): void {
  const routes = app.withTypeProvider<ZodTypeProvider>();
  routes.get(
    '/traces',
    {
      config: { scope: 'traces:read' },
      schema: { summary: 'Calls, newest first, a page at a time', querystring: traceListQuery, response: { 200: traceListAnswerSchema, ...errorResponses } },
    },
    async (request) => {
      const query = request.query;
      const rows = await traces.listCalls({
        api_key_id: ownCallsOnly(request.identity),
        agent_id: query.agent_id,
        tool: query.tool,
        status: query.status,
        since: query.since ? new Date(query.since) : undefined,
        before: query.cursor ? decodeCursor(query.cursor) : undefined,
        limit: query.limit,
      });
      const last = rows.at(-1);
      return { traces: rows.map(({ cursor_at: _cursor, ...summary }) => summary), next_cursor: rows.length === query.limit && last ? encodeCursor(last) : null };
    },
  );

  routes.get(
    '/traces/export',
    {
      config: { scope: 'traces:read' },
      schema: {
        summary: 'Stream calls with their traces (JSON array, JSON lines, LangSmith or Helicone records)',
        querystring: traceExportQuery,
        // Streamed, so not serialized through a schema: the 200 is described, not checked.
        response: {
          200: {
            description: 'A JSON array (format=json) or one JSON record per line',
            content: { 'application/json': { schema: z.array(z.unknown()) }, 'application/x-ndjson': { schema: z.unknown() } },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const query = request.query;
      const filters = {
        api_key_id: ownCallsOnly(request.identity),
        agent_id: query.agent_id,
        tool: query.tool,
        status: query.status,
        since: query.since ? new Date(query.since) : undefined,
      };
      const asArray = query.format === 'json';
      // Streamed page by page, so a large export never sits in memory.
      async function* lines(): AsyncGenerator<string> {
        let before: TraceFilters['before'];
        let sent = 0;
        if (asArray) yield '[';
        while (sent < query.limit) {
          const page = await traces.listCalls({ ...filters, before, limit: Math.min(200, query.limit - sent) });
          if (page.length === 0) break;
          // Each call's trace comes with it: one read a page.
          const details = await calls.findCallDetails(page.map((p) => p.call_id));
          for (const { cursor_at: _cursor, ...summary } of page) {
            const detail = details.get(summary.call_id);
            const record = exportShape(query.format, { summary, request: detail?.request ?? null, answer: detail?.answer ?? null, events: detail?.trace ?? [] });
            yield asArray ? `${sent === 0 ? '' : ','}\n${JSON.stringify(record)}` : `${JSON.stringify(record)}\n`;
            sent++;
          }
          const last = page.at(-1)!;
          before = { created_at: last.cursor_at, id: last.call_id };
        }
        if (asArray) yield '\n]\n';
      }
      void reply.header('content-type', asArray ? 'application/json' : 'application/x-ndjson');
      void reply.header('content-disposition', `attachment; filename="invoke-traces.${asArray ? 'json' : 'jsonl'}"`);
      return reply.send(Readable.from(lines()));
    },
  );

  routes.get(
    '/traces/:call_id',
    {
      config: { scope: 'traces:read' },
      schema: { summary: 'One call: request, answer and trace events', params: traceCallParams, response: { 200: traceDetailAnswerSchema, ...errorResponses } },
    },
    async (request) => {
      const { call_id } = request.params;
      const detail = (await calls.findCallDetails([call_id])).get(call_id);
      const own = ownCallsOnly(request.identity);
      if (!detail || (own !== undefined && detail.api_key_id !== own)) throw new NotFoundError(`No call ${call_id}`, { call_id });
      return { ...detail.summary, request: detail.request, answer: detail.answer, events: detail.trace };
    },
  );
}
