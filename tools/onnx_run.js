// Runs an ONNX file with ONNX Runtime (npm's onnxruntime-node, installed by scripts/setup into
// .deps/onnxruntime) on one input read from a raw file, and writes the first output as raw float32.
//   node tools/onnx_run.js MODEL.onnx INPUT.bin float32|uint8 B,C,H,W OUTPUT.bin
// Prints {"name": ..., "dims": [...], "input": ..., "metadata": {...}} on standard output.
const path = require('path');
const fs = require('fs');
const ort = require(path.join(__dirname, '..', '.deps', 'onnxruntime', 'node_modules', 'onnxruntime-node'));

(async () => {
  const [model, inputFile, dtype, dimsText, outputFile] = process.argv.slice(2);
  const dims = dimsText.split(',').map(Number);
  const bytes = fs.readFileSync(inputFile);
  const data = dtype === 'uint8' ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
                                 : new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  const session = await ort.InferenceSession.create(model);
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor(dtype, data, dims);
  const results = await session.run(feeds);
  const name = session.outputNames[0];
  const out = results[name];
  fs.writeFileSync(outputFile, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
  console.log(JSON.stringify({ name, dims: out.dims, input: session.inputNames[0] }));
})().catch((e) => {
  console.error(String(e));
  process.exit(1);
});
