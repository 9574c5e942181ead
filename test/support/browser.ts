/**
 * Headless Chromium from Debian (package chromium) driven by playwright-core:
 * no browser download, no sandbox (tests run as root), no GPU, and none of
 * Chromium's background traffic (updates, field trials, safe browsing).
 * Every page collects its console errors and uncaught exceptions, so a test
 * can assert there were none.
 */
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { requireBinary } from './process.ts';

export interface BrowserPage {
  page: Page;
  context: BrowserContext;
  /** Console messages of type error and uncaught page exceptions, as text, in order. */
  errors: string[];
}

export interface TestBrowser {
  open(options?: { width?: number; height?: number; extraHTTPHeaders?: Record<string, string> }): Promise<BrowserPage>;
  close(): Promise<void>;
}

export async function launchChromium(): Promise<TestBrowser> {
  const executablePath = requireBinary('chromium');
  const browser: Browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: 30_000,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-default-apps',
      '--disable-sync',
      '--disable-features=Translate,OptimizationHints,MediaRouter',
      '--metrics-recording-only',
      '--no-first-run',
      '--safebrowsing-disable-auto-update',
    ],
  });
  return {
    async open(options = {}) {
      const context = await browser.newContext({
        viewport: { width: options.width ?? 1280, height: options.height ?? 900 },
        ...(options.extraHTTPHeaders ? { extraHTTPHeaders: options.extraHTTPHeaders } : {}),
      });
      const page = await context.newPage();
      page.setDefaultTimeout(15_000);
      const errors: string[] = [];
      page.on('console', (message) => {
        if (message.type() === 'error') errors.push(`console: ${message.text()} (${message.location().url})`);
      });
      page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
      return { page, context, errors };
    },
    close: () => browser.close(),
  };
}
