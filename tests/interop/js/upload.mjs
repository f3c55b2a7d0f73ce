// Drives the real tus-js-client (Node build) against a tus server for the
// interop tests in tests/interop/test_tus_js_client.py.
//
// Usage: node upload.mjs '<json>'  where json is
//   {"mode": "chunked" | "resume" | "parallel", "endpoint": URL, "file": PATH,
//    "chunkSize": N, "headers": {...}, "storePath": PATH (resume only),
//    "abortAfter": N (resume only), "deadlineMs": N}
// Prints one JSON line on stdout: {"url": ..., ...mode-specific facts};
// exits non-zero with the error on stderr when the upload fails.
import * as fs from 'node:fs';
import { Upload, FileUrlStorage } from 'tus-js-client';

const opts = JSON.parse(process.argv[2]);
const deadline = setTimeout(() => {
  console.error(`deadline of ${opts.deadlineMs} ms exceeded`);
  process.exit(3);
}, opts.deadlineMs ?? 60000);

function baseOptions(extra) {
  return {
    endpoint: opts.endpoint,
    headers: opts.headers ?? {},
    chunkSize: opts.chunkSize,
    retryDelays: [],
    metadata: { filename: 'interop.bin', filetype: 'application/octet-stream' },
    ...extra,
  };
}

// Run one upload to completion; resolves with the Upload.
function run(upload) {
  return new Promise((resolve, reject) => {
    upload.options.onSuccess = () => resolve(upload);
    upload.options.onError = (err) => reject(err);
    upload.start();
  });
}

async function chunked() {
  const patches = [];
  const upload = new Upload(fs.createReadStream(opts.file), baseOptions({
    onBeforeRequest: (req) => {
      if (req.getMethod() === 'PATCH') patches.push(Number(req.getHeader('Upload-Offset')));
    },
  }));
  await run(upload);
  return { url: upload.url, patchOffsets: patches };
}

async function resume() {
  // First client: stores its URL in a FileUrlStorage, is aborted after some progress.
  const first = new Upload(fs.createReadStream(opts.file), baseOptions({
    urlStorage: new FileUrlStorage(opts.storePath),
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: false,
  }));
  const abortedAt = await new Promise((resolve, reject) => {
    let aborting = false;
    first.options.onProgress = (sent) => {
      if (!aborting && sent >= opts.abortAfter) {
        aborting = true;
        first.abort().then(() => resolve(sent), reject);
      }
    };
    first.options.onSuccess = () => reject(new Error('first upload finished before it was aborted'));
    first.options.onError = (err) => { if (!aborting) reject(err); };
    first.start();
  });

  // Second client: a fresh Upload and a fresh storage object on the same file.
  const methods = [];
  let resumeOffset = null;
  const second = new Upload(fs.createReadStream(opts.file), baseOptions({
    urlStorage: new FileUrlStorage(opts.storePath),
    onBeforeRequest: (req) => {
      const method = req.getMethod();
      methods.push(method);
      if (method === 'PATCH' && resumeOffset === null) resumeOffset = Number(req.getHeader('Upload-Offset'));
    },
  }));
  const previous = await second.findPreviousUploads();
  if (previous.length === 0) throw new Error('FileUrlStorage holds no previous upload');
  second.resumeFromPreviousUpload(previous[0]);
  await run(second);
  return { url: second.url, firstUrl: first.url, abortedAt, resumeOffset, methods };
}

async function parallel() {
  const upload = new Upload(fs.createReadStream(opts.file), baseOptions({ parallelUploads: 3 }));
  await run(upload);
  return { url: upload.url, partUrls: upload._parallelUploadUrls ?? null };
}

const modes = { chunked, resume, parallel };
try {
  const mode = modes[opts.mode];
  if (!mode) throw new Error(`unknown mode ${opts.mode}`);
  const result = await mode();
  process.stdout.write(JSON.stringify(result) + '\n');
  clearTimeout(deadline);
} catch (err) {
  console.error(String(err && err.stack ? err.stack : err));
  process.exit(1);
}
