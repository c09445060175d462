// (p) Serving latency, ONNX Runtime (npm's onnxruntime-node from .deps/onnxruntime): DIR/pixels.onnx,
// which birdplane_bench predict exported with the preprocessing inside (uint8 pixels in, logits out);
// per call, session.run, then softmax and the top 5 in JavaScript. Seconds per call on one image and on
// a batch of 64, medians. Usage: node predict_ort.js DIR CALLS THREADS. Prints one JSON line.
const path = require('path');
const ort = require(path.join(__dirname, '..', '..', '.deps', 'onnxruntime', 'node_modules', 'onnxruntime-node'));

function top5(logits, batch, classes) {
  const out = [];
  for (let b = 0; b < batch; b++) {
    const row = logits.subarray(b * classes, (b + 1) * classes);
    const max = Math.max(...row);
    const e = Array.from(row, (v) => Math.exp(v - max));
    const sum = e.reduce((a, v) => a + v, 0);
    out.push(e.map((v, i) => [v / sum, i]).sort((a, c) => c[0] - a[0]).slice(0, 5));
  }
  return out;
}

(async () => {
  const [dir, callsText, threadsText] = process.argv.slice(2);
  const calls = Number(callsText);
  const threads = Number(threadsText || 2);
  const session = await ort.InferenceSession.create(path.join(dir, 'pixels.onnx'),
    { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const input = session.inputNames[0];
  async function timeCalls(batch, n) {
    const data = new Uint8Array(batch * 3 * 32 * 32);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    const feeds = { [input]: new ort.Tensor('uint8', data, [batch, 3, 32, 32]) };
    const once = async () => {
      const r = await session.run(feeds);
      const out = r[session.outputNames[0]];
      return top5(out.data, batch, out.dims[1]);
    };
    for (let i = 0; i < 10; i++) await once();
    const seconds = [];
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint();
      await once();
      seconds.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    seconds.sort((a, b) => a - b);
    return seconds[Math.floor(seconds.length / 2)];
  }
  const single = await timeCalls(1, calls);
  const batch = await timeCalls(64, Math.max(10, Math.floor(calls / 10)));
  console.log(JSON.stringify({ mode: 'predict', side: 'onnxruntime', single_seconds: single, batch64_seconds: batch, threads }));
})().catch((e) => {
  console.error(String(e));
  process.exit(1);
});
