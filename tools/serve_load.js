// A bounded load test of `birdplane serve` on loopback: CLIENTS concurrent clients post IMAGE to
// /predict until REQUESTS answers have come back (a new connection per request, as independent
// clients would), timing each request.
//   node tools/serve_load.js URL IMAGE CLIENTS REQUESTS
// Prints {"requests", "errors", "statuses", "seconds", "per_second", "p50_ms", "p99_ms", "max_ms"}.
const fs = require('fs');
const http = require('http');

const [url, image, clientsText, requestsText] = process.argv.slice(2);
const body = fs.readFileSync(image);
const clients = Number(clientsText);
const total = Number(requestsText);
const target = new URL('predict', url);

function post() {
  return new Promise((resolve) => {
    const start = process.hrtime.bigint();
    const req = http.request(target, {
      method: 'POST', agent: false,
      headers: { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - start) / 1e6;
        let ok = res.statusCode === 200;
        if (ok) {
          try { ok = typeof JSON.parse(Buffer.concat(chunks).toString()).class === 'string'; } catch (e) { ok = false; }
        }
        resolve({ ms, status: res.statusCode, ok });
      });
    });
    req.on('error', (e) => resolve({ ms: Number(process.hrtime.bigint() - start) / 1e6, status: String(e.code), ok: false }));
    req.end(body);
  });
}

(async () => {
  let started = 0;
  const times = [];
  const statuses = {};
  let errors = 0;
  const begin = process.hrtime.bigint();
  async function client() {
    while (started < total) {
      started += 1;
      const r = await post();
      times.push(r.ms);
      statuses[r.status] = (statuses[r.status] || 0) + 1;
      if (!r.ok) errors += 1;
    }
  }
  await Promise.all(Array.from({ length: clients }, client));
  const seconds = Number(process.hrtime.bigint() - begin) / 1e9;
  times.sort((a, b) => a - b);
  const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  console.log(JSON.stringify({
    requests: times.length, errors, statuses, seconds,
    per_second: times.length / seconds, p50_ms: q(0.5), p99_ms: q(0.99), max_ms: times[times.length - 1],
  }));
})();
