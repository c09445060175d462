// Opens a page in headless Chromium (Debian's chromium through npm's puppeteer-core, which
// scripts/setup installs into .deps/browser) as a reader would, and reports what a test checks: the
// console's errors, every request that left the page's own file or server, the text of each table with
// an id, and a screenshot of the whole page.
//   node tools/page_check.js URL SCREENSHOT.png [WIDTH]
// Prints {"title", "console_errors", "foreign_requests", "tables": {id: [[cell, ...], ...]}, "ids": {id: text}}.
const path = require('path');
const puppeteer = require(path.join(__dirname, '..', '.deps', 'browser', 'node_modules', 'puppeteer-core'));

(async () => {
  const [url, screenshot, widthText] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: Number(widthText || 1100), height: 800 });
    const consoleErrors = [];
    const foreign = [];
    const own = new URL(url);
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('request', (r) => {
      const u = new URL(r.url());
      const same = own.protocol === 'file:' ? u.href === own.href : u.origin === own.origin;
      if (!same && u.protocol !== 'data:' && u.protocol !== 'blob:') foreign.push(r.url());
    });
    await page.goto(url, { waitUntil: 'networkidle0', timeout: 60000 });
    const shown = await page.evaluate(() => {
      const tables = {};
      for (const t of document.querySelectorAll('table[id]')) {
        tables[t.id] = Array.from(t.querySelectorAll('tr')).map((r) =>
          Array.from(r.children).map((c) => c.textContent.trim()));
      }
      const ids = {};
      for (const e of document.querySelectorAll('[id]')) {
        if (e.tagName !== 'TABLE') ids[e.id] = e.textContent.trim().slice(0, 500);
      }
      return { title: document.title, tables, ids, images: document.images.length,
               broken: Array.from(document.images).filter((i) => !i.complete || i.naturalWidth === 0).length };
    });
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ ...shown, console_errors: consoleErrors, foreign_requests: foreign }));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(String(e));
  process.exit(1);
});
