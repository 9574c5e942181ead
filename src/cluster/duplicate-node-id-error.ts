/**
 * Joining a replica set failed because a live process holds the node id.
 * In a module of its own, so the cluster primary recognises it without
 * loading etcd.
 */
export class DuplicateNodeIdError extends Error {
  override readonly name = 'DuplicateNodeIdError';
  readonly code = 'DUPLICATE_NODE_ID';
  constructor(
    readonly nodeId: string,
    readonly holder: { instance: string | undefined; advertiseUrl: string | undefined; startedAt: string | undefined },
  ) {
    const facts = [holder.advertiseUrl && `advertising ${holder.advertiseUrl}`, holder.startedAt && `started ${holder.startedAt}`].filter(Boolean);
    super(
      `node id "${nodeId}" is already used by a live replica${facts.length > 0 ? ` (${facts.join(', ')})` : ''}; ` +
        'give every replica its own OUTPOST_NODE_ID',
    );
  }
}
