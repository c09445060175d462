// Drives `birdplane serve`'s page in headless Chromium (tools/browser.js) as a person would: open the
// page, pick an image in the file chooser, wait for the bars, read the top class. Every request the page makes and every
// console message is recorded, so a test can check that nothing leaves the server and nothing errs.
//   node tools/serve_browser.js URL IMAGE SCREENSHOT.png
// Prints {"model", "top", "rows": [[class, percent text], ...], "console_errors", "foreign_requests"}.
const { open, fail } = require('./browser');

(async () => {
  const [url, image, screenshot] = process.argv.slice(2);
  const { browser, page, consoleErrors, foreign } = await open(url, 720, 560);
  try {
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
})().catch(fail);
