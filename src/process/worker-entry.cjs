// A worker process's entry. The cluster primary forks workers with tsx's require hook
// (--require tsx/cjs) instead of its ESM loader, which runs on a thread of its own and
// costs each process ~20-25 MiB of RSS (see worker-exec.ts).
require('./worker-main.ts');
