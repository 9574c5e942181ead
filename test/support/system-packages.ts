import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** test/system-packages.txt: the one list of binaries the tests run and the Debian package of each. */
export const systemPackagesFile = join(import.meta.dirname, '..', 'system-packages.txt');

/** Installs what the list names and PATH lacks (as root), or prints what to install and exits 1. */
export const ensureSystemPackagesScript = join(import.meta.dirname, 'ensure-system-packages.sh');

/** Parses the list's `BINARY PACKAGE` lines (blank lines and `#` comments skipped) into binary → package. */
export function parseSystemPackages(text: string): Map<string, string> {
  const packages = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [binary, pkg] = line.trim().split(/\s+/);
    if (binary === undefined || binary === '' || binary.startsWith('#')) continue;
    packages.set(binary, pkg ?? binary);
  }
  return packages;
}

/** The Debian package that provides `binary`, per test/system-packages.txt; the binary's own name when unlisted. */
export function debianPackageFor(binary: string): string {
  return parseSystemPackages(readFileSync(systemPackagesFile, 'utf8')).get(binary) ?? binary;
}
