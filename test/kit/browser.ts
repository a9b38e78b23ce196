/**
 * Headless Debian Chromium for the dashboard e2e tests, and reading numbers off the page (and the
 * files it saves) exactly.
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import { ensureDebianPackage } from '../../server/src/stack/index.js';

/** Without the background-networking flags Chromium keeps dialling out of this closed network. */
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

export function launchChromium(log: (m: string) => void): Promise<Browser> {
  ensureDebianPackage('chromium', 'chromium', log);
  return chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
}

/** "362.790040" (grouping ignored) → 362790040n micros; anything else throws. */
export function parseMicros(text: string | null): bigint {
  const m = /^(\d+)\.(\d{6})$/.exec((text ?? '').replace(/[,\s]/g, ''));
  if (!m) throw new Error(`not an amount with 6 decimals: ${JSON.stringify(text)}`);
  return BigInt(m[1]) * 1_000_000n + BigInt(m[2]);
}

/** The text of the first element with this data-testid, or null if it does not show in time. */
export async function textOf(page: Page, testid: string, timeoutMs = 2_000): Promise<string | null> {
  return page.locator(`[data-testid="${testid}"]`).first().textContent({ timeout: timeoutMs }).catch(() => null);
}

/** A CSV file's rows of fields, RFC 4180 (quoted fields with doubled quotes, commas and line breaks inside). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || row.length > 0) rows.push([...row, field]);
  return rows;
}
