// Opens a page in headless Chromium (tools/browser.js) as a reader would, and reports what a test
// checks: the console's errors, every request that left the page's own file or server, the text of each table with
// an id, and a screenshot of the whole page.
//   node tools/page_check.js URL SCREENSHOT.png [WIDTH]
// Prints {"title", "console_errors", "foreign_requests", "tables": {id: [[cell, ...], ...]}, "ids": {id: text}}.
const { open, fail } = require('./browser');

(async () => {
  const [url, screenshot, widthText] = process.argv.slice(2);
  const { browser, page, consoleErrors, foreign } = await open(url, Number(widthText || 1100), 800);
  try {
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
})().catch(fail);
