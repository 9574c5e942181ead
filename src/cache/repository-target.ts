import type { Upstream } from './ports.ts';

/** A repository on a given primary: everything a cache lookup is keyed by. */
export interface RepositoryTarget {
  upstream: Upstream;
  /** Directory-safe key of the primary in the cache (its host). */
  upstreamKey: string;
  /** The name as the primary knows it (`library/nginx`). */
  name: string;
}

/** What a blob lookup needs: blobs are stored by digest alone, fetched from (and linked to) this repository on this primary. */
export type BlobTarget = Pick<RepositoryTarget, 'upstream' | 'upstreamKey' | 'name'>;
