/** Per-request context carried across async calls, so upstream time can be attributed to the request that caused it. */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface RequestContext {
  upstreamMs: number;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();
