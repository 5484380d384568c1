// Mock issue tracker: POST /issues creates an issue every time it is called (no deduplication,
// like most trackers). The first create after a reset is slow: the issue exists at once, the
// answer comes `slowMs` later, so a client with a shorter timeout gives up on a call that worked.
import { startHttpMock, type HttpMock } from './http-mock.ts';

export interface Issue {
  id: string;
  title: string;
  body: string;
}

export interface IssueTrackerMock {
  readonly url: string;
  readonly http: HttpMock;
  readonly issues: readonly Issue[];
  reset(): void;
  close(): Promise<void>;
}

export async function startIssueTrackerMock(options: { slowMs?: number } = {}): Promise<IssueTrackerMock> {
  const slowMs = options.slowMs ?? 2_000;
  const issues: Issue[] = [];
  let createsSinceReset = 0;
  let numbering = 100;

  const http = await startHttpMock({
    'POST /issues': (req, reply) => {
      const { title, body } = req.body;
      if (typeof title !== 'string' || title === '') return reply.json(400, { error: 'title is required' });
      numbering += 1;
      const issue: Issue = { id: `OPS-${numbering}`, title, body: typeof body === 'string' ? body : '' };
      issues.push(issue);
      createsSinceReset += 1;
      if (createsSinceReset === 1) return reply.later(slowMs, 201, issue);
      reply.json(201, issue);
    },
    'GET /issues': (_req, reply) => reply.json(200, { issues }),
  });

  return {
    url: http.url,
    http,
    issues,
    reset: () => {
      http.resetRequests();
      issues.length = 0;
      createsSinceReset = 0;
      numbering = 100;
    },
    close: () => http.close(),
  };
}
