// Headless Chromium for the page tests: Debian's chromium driven through npm's puppeteer-core (both
// installed by scripts/setup, the latter into .deps/browser). `open` starts the browser and a page that
// records console errors and every request leaving `url`'s own file or server.
const path = require('path');
const puppeteer = require(path.join(__dirname, '..', '.deps', 'browser', 'node_modules', 'puppeteer-core'));

async function open(url, width, height) {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium refuses its sandbox.
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  const page = await browser.newPage();
  await page.setViewport({ width, height });
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
  return { browser, page, consoleErrors, foreign };
}

function fail(e) {
  console.error(String(e));
  process.exit(1);
}

module.exports = { open, fail };
