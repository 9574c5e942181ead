/**
 * One HTTP exchange with the primary (or its token server / blob storage),
 * redirects included.
 *
 * undici 7 refuses `maxRedirections` on `request()` (it moved to the redirect
 * interceptor), and the interceptor forwards headers as given; redirects are
 * followed here instead so that `Authorization` only ever goes to the origin
 * it was meant for. 301/302/303/307/308 are followed up to `maxRedirects`
 * hops; every redirect body is dumped.
 *
 * Requests to the primary's origin use the primary's dispatcher (its CA
 * bundle, its connection limit); every other origin (token realm on another
 * host, S3, a CDN) uses the foreign one.
 */
import type { Dispatcher } from 'undici';
import { UpstreamError } from '../cache/ports.ts';
import { discard } from './response-body.ts';

export type Method = 'GET' | 'HEAD';

export interface SendRequest {
  method: Method;
  url: URL;
  headers: Record<string, string>;
  /** Sent only to hops on the origin of `url`. */
  authorization: string | undefined;
  signal: AbortSignal;
}

export type Response = Dispatcher.ResponseData & {
  /** Where the final answer came from (after redirects). */
  url: URL;
};

export interface TransportOptions {
  primaryOrigin: string;
  primary: Dispatcher;
  foreign: Dispatcher;
  maxRedirects?: number;
  /** Sees every response's headers (redirects included), e.g. for rate-limit headers. */
  onResponse?: (url: URL, headers: Dispatcher.ResponseData['headers']) => void;
}

export interface Transport {
  send(request: SendRequest): Promise<Response>;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export function createTransport(options: TransportOptions): Transport {
  const maxRedirects = options.maxRedirects ?? 5;

  async function send(request: SendRequest): Promise<Response> {
    const authOrigin = request.url.origin;
    let url = request.url;
    for (let hop = 0; ; hop++) {
      const headers = { ...request.headers };
      if (request.authorization !== undefined && url.origin === authOrigin) {
        headers['authorization'] = request.authorization;
      }
      const dispatcher = url.origin === options.primaryOrigin ? options.primary : options.foreign;
      const res = await dispatcher.request({
        origin: url.origin,
        path: `${url.pathname}${url.search}`,
        method: request.method,
        headers,
        signal: request.signal,
      });
      options.onResponse?.(url, res.headers);
      if (!REDIRECTS.has(res.statusCode)) return Object.assign(res, { url });

      discard(res.body);
      const location = res.headers['location'];
      const target = Array.isArray(location) ? location[0] : location;
      if (target === undefined || target === '') {
        throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${request.method} ${url.pathname}: ${res.statusCode} without Location`, {
          status: res.statusCode,
        });
      }
      if (hop >= maxRedirects) {
        throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${request.method} ${request.url.pathname}: more than ${maxRedirects} redirects`, {
          status: res.statusCode,
        });
      }
      try {
        url = new URL(target, url);
      } catch (err) {
        throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${request.method} ${url.pathname}: bad Location`, { cause: err });
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') {
        throw new UpstreamError('UPSTREAM_BAD_RESPONSE', `${request.method} ${request.url.pathname}: redirect to ${url.protocol}`);
      }
    }
  }

  return { send };
}
