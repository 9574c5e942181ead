/** SIGTERM/SIGINT (or the primary's shutdown message) run `stop` once; a second signal exits at once. */
export function onShutdownSignal(stop: () => Promise<void>): void {
  let stopping = false;
  const trigger = (): void => {
    if (stopping) {
      process.exit(1);
    }
    stopping = true;
    stop().catch(() => process.exit(1));
  };
  process.on('SIGTERM', trigger);
  process.on('SIGINT', trigger);
  process.on('message', (message) => {
    if ((message as { t?: unknown } | null)?.t === 'shutdown') trigger();
  });
}
