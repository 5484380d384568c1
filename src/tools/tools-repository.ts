import { sql, type Kysely } from 'kysely';
import { jsonb } from '../db/store.ts';
import type { Database } from '../db/schema.ts';
import type { HttpMethod, ParamPlacement } from './http-invoker.ts';
import type { CapabilityCard } from './types.ts';

/** How to reach a tool: stored beside its card. OpenAPI operations carry where each param goes. */
export type ToolTransport =
  { kind: 'http'; base_url: string; method: HttpMethod; path: string; placement?: ParamPlacement } | { kind: 'mcp'; mcp_url: string; tool_name: string } | { kind: 'builtin' };

export interface StoredTool {
  card: CapabilityCard;
  transport: ToolTransport;
}

export function createToolsRepository(db: Kysely<Database>) {
  return {
    /** Replaces the provider and all its tools in one transaction. */
    async replaceProvider(name: string, kind: string, registration: unknown, tools: StoredTool[]): Promise<void> {
      await db.transaction().execute(async (trx) => {
        // Concurrent registrations of one name take turns instead of racing on the primary key.
        await sql`select pg_advisory_xact_lock(hashtext(${`provider:${name}`}))`.execute(trx);
        await trx.deleteFrom('providers').where('name', '=', name).execute();
        await trx
          .insertInto('providers')
          .values({ name, kind, registration: jsonb(registration) })
          .execute();
        // Every replica drops its cached cards of this provider when this commits.
        await sql`select pg_notify('invoke_tools', ${name})`.execute(trx);
        if (tools.length > 0) {
          await trx
            .insertInto('tools')
            .values(tools.map((t) => ({ key: t.card.key, provider: name, card: jsonb(t.card), transport: jsonb(t.transport) })))
            .execute();
        }
      });
    },

    async findTool(key: string): Promise<StoredTool | undefined> {
      const row = await db.selectFrom('tools').select(['card', 'transport']).where('key', '=', key).executeTakeFirst();
      return row ? { card: row.card as CapabilityCard, transport: row.transport as ToolTransport } : undefined;
    },

    async listCards(): Promise<CapabilityCard[]> {
      const rows = await db.selectFrom('tools').select('card').orderBy('key').execute();
      return rows.map((r) => r.card as CapabilityCard);
    },
  };
}
export type ToolsRepository = ReturnType<typeof createToolsRepository>;
