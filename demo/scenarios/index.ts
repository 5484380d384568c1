// The seven scenarios, in the order the demo runs and the table lists them.
import { duplicateIssue } from './duplicate-issue.ts';
import { editedApproval } from './edited-approval.ts';
import { paymentTimeout } from './payment-timeout.ts';
import type { Scenario } from './scenario.ts';
import { staleApproval } from './stale-approval.ts';
import { toolTimeout } from './tool-timeout.ts';
import { webhookInconsistency } from './webhook-inconsistency.ts';
import { wrongCrmUpdate } from './wrong-crm-update.ts';

export const SCENARIOS: readonly Scenario[] = [toolTimeout, paymentTimeout, wrongCrmUpdate, duplicateIssue, staleApproval, webhookInconsistency, editedApproval];
