// Mock payments API. Charges: every POST /charges records a new charge (no idempotency of its
// own, like many real APIs), and the first charge after a reset stalls AFTER recording it: the
// caller times out although the money moved. Invoices: read an invoice, send a reminder; each
// reminder is recorded with the invoice's status at the moment it was sent.
import { startHttpMock, type HttpMock } from './http-mock.ts';

export interface Charge {
  charge_id: string;
  payment_id: string;
  customer_id: string;
  amount: number;
}

export interface Invoice {
  invoice_id: string;
  customer_id: string;
  invoice_status: 'overdue' | 'paid';
  balance: number;
}

export interface Reminder {
  invoice_id: string;
  /** The invoice's status when the reminder went out: anything but `overdue` is a stale reminder. */
  invoice_status_at_send: string;
  balance_at_send: number;
}

export interface PaymentsMock {
  readonly url: string;
  readonly http: HttpMock;
  readonly charges: readonly Charge[];
  readonly reminders: readonly Reminder[];
  /** Something outside the agent happens: the customer pays the invoice in full. */
  payInvoice(invoiceId: string): void;
  /** Fresh state: no charges, no reminders, the invoices overdue again, the next charge stalls. */
  reset(): void;
  close(): Promise<void>;
}

const INVOICES: Invoice[] = [{ invoice_id: 'inv_2001', customer_id: 'cust_1001', invoice_status: 'overdue', balance: 1200 }];

export async function startPaymentsMock(options: { stallMs?: number } = {}): Promise<PaymentsMock> {
  const stallMs = options.stallMs ?? 3_000;
  const charges: Charge[] = [];
  const reminders: Reminder[] = [];
  let invoices = new Map(INVOICES.map((invoice) => [invoice.invoice_id, { ...invoice }]));
  let chargesSinceReset = 0;

  const http = await startHttpMock({
    'POST /charges': (req, reply) => {
      const { payment_id, customer_id, amount } = req.body;
      if (typeof payment_id !== 'string' || typeof customer_id !== 'string' || typeof amount !== 'number') {
        return reply.json(400, { error: 'payment_id, customer_id and amount are required' });
      }
      const charge: Charge = { charge_id: `ch_${charges.length + 1}`, payment_id, customer_id, amount };
      charges.push(charge);
      chargesSinceReset += 1;
      const answer = { ...charge, status: 'succeeded' };
      // The first charge is recorded, then the answer is stuck behind a slow acquirer.
      if (chargesSinceReset === 1) return reply.later(stallMs, 200, answer);
      reply.json(200, answer);
    },
    'GET /payments/*': (req, reply) => {
      const paymentId = req.segments[1]!;
      const recorded = charges.filter((c) => c.payment_id === paymentId);
      const first = recorded[0];
      reply.json(200, {
        payment_id: paymentId,
        charged: recorded.length > 0,
        customer_id: first?.customer_id ?? null,
        amount: first?.amount ?? null,
        charge_count: recorded.length,
      });
    },
    'GET /invoices/*': (req, reply) => {
      const invoice = invoices.get(req.segments[1]!);
      if (!invoice) return reply.json(404, { error: 'no such invoice' });
      reply.json(200, invoice);
    },
    'POST /invoices/*/reminders': (req, reply) => {
      const invoice = invoices.get(req.segments[1]!);
      if (!invoice) return reply.json(404, { error: 'no such invoice' });
      reminders.push({ invoice_id: invoice.invoice_id, invoice_status_at_send: invoice.invoice_status, balance_at_send: invoice.balance });
      reply.json(200, { invoice_id: invoice.invoice_id, reminder_sent: true });
    },
  });

  return {
    url: http.url,
    http,
    charges,
    reminders,
    payInvoice: (invoiceId) => {
      const invoice = invoices.get(invoiceId);
      if (!invoice) throw new Error(`no invoice ${invoiceId}`);
      invoice.invoice_status = 'paid';
      invoice.balance = 0;
    },
    reset: () => {
      http.resetRequests();
      charges.length = 0;
      reminders.length = 0;
      invoices = new Map(INVOICES.map((invoice) => [invoice.invoice_id, { ...invoice }]));
      chargesSinceReset = 0;
    },
    close: () => http.close(),
  };
}
