/**
 * nginx `stub_status` counters for one HTTP server: accepted and handled
 * connections, total requests, and connections currently reading a request,
 * writing a response, or idle in keep-alive (waiting).
 *
 * Node does not expose request-header parsing, so "reading" is a connection
 * that has not yet delivered a request (new, or between pipelined requests
 * until the next request event) and "waiting" is a keep-alive connection
 * whose last response finished.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionCounters {
  accepts: number;
  handled: number;
  requests: number;
  reading: number;
  writing: number;
  waiting: number;
}

export function emptyCounters(): ConnectionCounters {
  return { accepts: 0, handled: 0, requests: 0, reading: 0, writing: 0, waiting: 0 };
}

export function addCounters(a: ConnectionCounters, b: ConnectionCounters): ConnectionCounters {
  return {
    accepts: a.accepts + b.accepts,
    handled: a.handled + b.handled,
    requests: a.requests + b.requests,
    reading: a.reading + b.reading,
    writing: a.writing + b.writing,
    waiting: a.waiting + b.waiting,
  };
}

type State = 'reading' | 'writing' | 'waiting';

export class ConnectionStats {
  private readonly counters = emptyCounters();
  private readonly states = new WeakMap<Socket, State>();

  attach(server: Server): void {
    server.on('connection', (socket: Socket) => {
      this.counters.accepts += 1;
      this.counters.handled += 1;
      this.move(socket, 'reading');
      socket.once('close', () => this.move(socket, undefined));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.counters.requests += 1;
      const socket = req.socket;
      this.move(socket, 'writing');
      res.once('finish', () => {
        if (!socket.destroyed) this.move(socket, 'waiting');
      });
    });
  }

  snapshot(): ConnectionCounters {
    return { ...this.counters };
  }

  private move(socket: Socket, next: State | undefined): void {
    const previous = this.states.get(socket);
    if (previous === next) return;
    if (previous) this.counters[previous] -= 1;
    if (next) {
      this.counters[next] += 1;
      this.states.set(socket, next);
    } else {
      this.states.delete(socket);
    }
  }
}

/** The exact text nginx's stub_status module prints. */
export function formatStubStatus(c: ConnectionCounters): string {
  const active = c.reading + c.writing + c.waiting;
  return (
    `Active connections: ${active} \n` +
    'server accepts handled requests\n' +
    ` ${c.accepts} ${c.handled} ${c.requests} \n` +
    `Reading: ${c.reading} Writing: ${c.writing} Waiting: ${c.waiting} \n`
  );
}
