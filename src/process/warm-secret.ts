/**
 * The node-local warm secret: without a cluster peer secret (standalone),
 * the cluster primary makes a random one at start and hands it to its
 * workers through the fork environment, so the node's own prefetch
 * scheduler can call its workers' `POST /api/v0/peer/warm` signed like a
 * peer would. It never leaves the node and changes at every start.
 */
import { randomBytes } from 'node:crypto';

export const warmSecretEnv = 'OUTPOST_INTERNAL_WARM_SECRET';

export function newWarmSecret(): string {
  return randomBytes(32).toString('hex');
}

/** The secret the primary handed this worker, if it did (64 hex characters). */
export function warmSecretFrom(env: NodeJS.ProcessEnv): string | undefined {
  const value = env[warmSecretEnv];
  return value !== undefined && /^[0-9a-f]{64}$/.test(value) ? value : undefined;
}
