// Drives `birdplane serve`'s page in headless Chromium (Debian's chromium, through npm's puppeteer-core,
// which scripts/setup installs into .deps/browser) as a person would: open the page, pick an image in
// the file chooser, wait for the bars, read the top class. Every request the page makes and every
// console message is recorded, so a test can check that nothing leaves the server and nothing errs.
//   node tools/serve_browser.js URL IMAGE SCREENSHOT.png
// Prints {"model", "top", "rows": [[class, percent text], ...], "console_errors", "foreign_requests"}.
const path = require('path');
const puppeteer = require(path.join(__dirname, '..', '.deps', 'browser', 'node_modules', 'puppeteer-core'));

(async () => {
  const [url, image, screenshot] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium refuses its sandbox.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 720, height: 560 });
    const consoleErrors = [];
    const foreign = [];
    const origin = new URL(url).origin;
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('request', (r) => {
      const u = r.url();
      if (!u.startsWith(origin) && !u.startsWith('blob:') && !u.startsWith('data:')) foreign.push(u);
    });
    await page.goto(url, { waitUntil: 'networkidle0', timeout: 30000 });
    await page.waitForFunction(() => document.getElementById('model').textContent.length > 0, { timeout: 10000 });
    const input = await page.$('#file');
    await input.uploadFile(image);
    await page.waitForFunction(
      () => document.getElementById('result').children.length > 0 || document.getElementById('error').textContent,
      { timeout: 30000 });
    const shown = await page.evaluate(() => ({
      model: document.getElementById('model').textContent,
      error: document.getElementById('error').textContent,
      rows: Array.from(document.querySelectorAll('#result .row')).map((r) =>
        Array.from(r.children).map((c) => c.textContent.trim()).filter((t) => t.length > 0)),
    }));
    await page.screenshot({ path: screenshot });
    console.log(JSON.stringify({
      model: shown.model,
      error: shown.error,
      top: shown.rows.length ? shown.rows[0][0] : null,
      rows: shown.rows,
      console_errors: consoleErrors,
      foreign_requests: foreign,
    }));
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(String(e));
  process.exit(1);
});
