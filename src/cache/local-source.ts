/** The local-file source: a verified blob on disk (or its bytes kept in memory), any range at once. */
import type { BlobSource } from './blob-source.ts';
import type { OpenBlob } from './ports.ts';

export function localSource(blob: OpenBlob): BlobSource {
  return {
    size: blob.size,
    result: 'hit',
    seekable: true,
    read: (buffer, position, length) => blob.read(buffer, position, length),
    willReadWhole: () => blob.willReadWhole?.(),
    close: () => blob.close(),
  };
}
