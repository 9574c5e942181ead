import { writeFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';

export interface Credentials {
  username: string;
  password: string;
}

/**
 * Writes an htpasswd file with bcrypt hashes — the only scheme CNCF
 * distribution accepts (and the one Outpost's `auth.mode: basic` reads).
 * Cost 4, the minimum, because the tests only need the format, not the strength.
 */
export async function writeHtpasswd(path: string, users: readonly Credentials[], cost = 4): Promise<void> {
  const lines = users.map((u) => {
    if (u.username.includes(':')) throw new Error(`htpasswd user name must not contain ':' (${u.username})`);
    return `${u.username}:${bcrypt.hashSync(u.password, cost)}`;
  });
  await writeFile(path, lines.join('\n') + '\n', { mode: 0o600 });
}
