/**
 * Runs `stop` once on SIGTERM/SIGINT or the primary's shutdown message.
 * Repeats are ignored here: a worker may get the same stop twice (a signal
 * to the whole process group and the primary's own), and a second SIGTERM
 * from an operator is the cluster primary's to act on — it kills the workers.
 */
export function onShutdownSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const trigger = (): void => {
    if (stopping) return;
    stopping = true;
    stop().catch(() => process.exit(1));
  };
  process.on('SIGTERM', trigger);
  process.on('SIGINT', trigger);
  process.on('message', (message) => {
    if ((message as { t?: unknown } | null)?.t === 'shutdown') trigger();
  });
}
