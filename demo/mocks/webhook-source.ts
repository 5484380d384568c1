// Mock webhook source and source of truth for refunds. POST /refunds answers "succeeded" at
// once, but the provider settles asynchronously: its webhook (`refund.failed`, the card was
// closed) lands in the order ledger, which is the source of truth, as the API answers. GET
// /orders/:id reads the ledger; GET /events lists the webhook events it applied.
import { startHttpMock, type HttpMock } from './http-mock.ts';

export interface Order {
  order_id: string;
  customer_id: string;
  total: number;
  refund_status: 'none' | 'succeeded' | 'failed';
  refunded_amount: number;
}

export interface WebhookEvent {
  type: 'refund.succeeded' | 'refund.failed';
  order_id: string;
  amount: number;
  reason?: string;
}

export interface WebhookSourceMock {
  readonly url: string;
  readonly http: HttpMock;
  /** Refund requests the API accepted and answered with `succeeded`. */
  readonly successReports: number;
  readonly events: readonly WebhookEvent[];
  order(id: string): Order | undefined;
  reset(): void;
  close(): Promise<void>;
}

const ORDERS: Order[] = [{ order_id: 'ord_5001', customer_id: 'cust_1003', total: 2400, refund_status: 'none', refunded_amount: 0 }];

export async function startWebhookSourceMock(): Promise<WebhookSourceMock> {
  const events: WebhookEvent[] = [];
  let orders = new Map(ORDERS.map((o) => [o.order_id, { ...o }]));
  let successReports = 0;

  const apply = (event: WebhookEvent) => {
    events.push(event);
    const order = orders.get(event.order_id);
    if (!order) return;
    if (event.type === 'refund.succeeded') {
      order.refund_status = 'succeeded';
      order.refunded_amount += event.amount;
    } else {
      order.refund_status = 'failed';
    }
  };

  const http = await startHttpMock({
    'POST /refunds': (req, reply) => {
      const { order_id, amount } = req.body;
      if (typeof order_id !== 'string' || typeof amount !== 'number') return reply.json(400, { error: 'order_id and amount are required' });
      if (!orders.has(order_id)) return reply.json(404, { error: 'no such order' });
      // The acquirer declines later; its webhook reaches the ledger while the API says "succeeded".
      apply({ type: 'refund.failed', order_id, amount, reason: 'card_closed' });
      successReports += 1;
      reply.json(200, { refund_id: `re_${successReports}`, order_id, amount, status: 'succeeded' });
    },
    'GET /orders/*': (req, reply) => {
      const order = orders.get(req.segments[1]!);
      if (!order) return reply.json(404, { error: 'no such order' });
      reply.json(200, order);
    },
    'GET /events': (_req, reply) => reply.json(200, { events }),
  });

  return {
    url: http.url,
    http,
    get successReports() {
      return successReports;
    },
    events,
    order: (id) => orders.get(id),
    reset: () => {
      http.resetRequests();
      events.length = 0;
      successReports = 0;
      orders = new Map(ORDERS.map((o) => [o.order_id, { ...o }]));
    },
    close: () => http.close(),
  };
}
