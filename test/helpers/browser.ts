/**
 * Headless Chromium for the dashboard's tests: Debian's chromium package driven by
 * playwright-core (no browser download at test time). Each page's console errors and
 * uncaught exceptions are collected so a test can assert there were none.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { ROOT } from './daemon.js';

const CHROMIUM = process.env.SLICED_CHROMIUM ?? '/usr/bin/chromium';

/** Where screenshots go: test-artifacts/ in the checkout (kept out of git). */
export const ARTIFACTS = join(ROOT, 'test-artifacts');

/** Why a browser cannot be driven here, or null. */
export async function browserSkipReason(): Promise<string | null> {
  if (!existsSync(CHROMIUM)) return `needs Chromium at ${CHROMIUM} (Debian package chromium; or set SLICED_CHROMIUM)`;
  try {
    await import('playwright-core');
  } catch {
    return 'needs the playwright-core package (npm ci installs it)';
  }
  return null;
}

export async function launchBrowser(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  // --no-sandbox: the tests run as root, where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/** Console errors, page errors and failed requests of `page`, as they come. */
export function collectErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`page: ${err.message}`));
  page.on('response', (response) => {
    if (response.status() >= 400) errors.push(`HTTP ${response.status()}: ${response.request().method()} ${response.url()}`);
  });
  return errors;
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}
