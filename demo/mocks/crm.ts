// Mock CRM: search customers by name, read one, update one. Every write is logged with the
// record it touched, so the demo counts writes per record at the CRM itself.
import { startHttpMock, type HttpMock } from './http-mock.ts';

export interface Customer {
  customer_id: string;
  name: string;
  plan: string;
  discount_pct: number;
}

export interface CrmWrite {
  customer_id: string;
  changes: Record<string, unknown>;
}

export interface CrmMock {
  readonly url: string;
  readonly http: HttpMock;
  readonly writes: readonly CrmWrite[];
  customer(id: string): Customer | undefined;
  reset(): void;
  close(): Promise<void>;
}

const CUSTOMERS: Customer[] = [
  { customer_id: 'cust_1001', name: 'Acme Corp', plan: 'growth', discount_pct: 0 },
  { customer_id: 'cust_1002', name: 'Acme Labs', plan: 'starter', discount_pct: 0 },
  { customer_id: 'cust_1003', name: 'Globex', plan: 'enterprise', discount_pct: 10 },
];
const WRITABLE = ['plan', 'discount_pct'];

export async function startCrmMock(): Promise<CrmMock> {
  const writes: CrmWrite[] = [];
  let customers = new Map(CUSTOMERS.map((c) => [c.customer_id, { ...c }]));

  const http = await startHttpMock({
    'GET /customers': (req, reply) => {
      const name = (req.query['name'] ?? '').toLowerCase();
      const found = [...customers.values()].filter((c) => c.name.toLowerCase() === name);
      reply.json(200, { customers: found });
    },
    'GET /customers/*': (req, reply) => {
      const customer = customers.get(req.segments[1]!);
      if (!customer) return reply.json(404, { error: 'no such customer' });
      reply.json(200, customer);
    },
    'PATCH /customers/*': (req, reply) => {
      const customer = customers.get(req.segments[1]!);
      if (!customer) return reply.json(404, { error: 'no such customer' });
      const changes = Object.fromEntries(Object.entries(req.body).filter(([key]) => WRITABLE.includes(key)));
      Object.assign(customer, changes);
      writes.push({ customer_id: customer.customer_id, changes });
      reply.json(200, customer);
    },
  });

  return {
    url: http.url,
    http,
    writes,
    customer: (id) => customers.get(id),
    reset: () => {
      http.resetRequests();
      writes.length = 0;
      customers = new Map(CUSTOMERS.map((c) => [c.customer_id, { ...c }]));
    },
    close: () => http.close(),
  };
}
