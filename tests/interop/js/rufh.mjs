// Drives tus-js-client in its IETF draft modes ('ietf-draft-03' = interop 5,
// 'ietf-draft-05' = interop 6) against tusd-py, for tests/interop/test_rufh_tus_js.py.
//
// Usage: node rufh.mjs '<json>'  where json is
//   {"mode": "chunked" | "resume", "protocol": "ietf-draft-03" | "ietf-draft-05",
//    "uploadDataDuringCreation": bool, "endpoint": URL, "file": PATH, "chunkSize": N,
//    "headers": {...}, "storePath": PATH (resume), "abortAfter": N (resume), "deadlineMs": N}
// Prints one JSON line: {"url": ..., "methods": [...], "interop": [...], ...}.
import * as fs from 'node:fs';
import { Upload, FileUrlStorage } from 'tus-js-client';

const opts = JSON.parse(process.argv[2]);
const deadline = setTimeout(() => {
  console.error(`deadline of ${opts.deadlineMs} ms exceeded`);
  process.exit(3);
}, opts.deadlineMs ?? 60000);

function baseOptions(record, extra) {
  return {
    endpoint: opts.endpoint,
    headers: opts.headers ?? {},
    chunkSize: opts.chunkSize,
    retryDelays: [],
    protocol: opts.protocol,
    uploadDataDuringCreation: opts.uploadDataDuringCreation,
    metadata: { filename: 'draft.bin', filetype: 'application/octet-stream' },
    onBeforeRequest: (req) => {
      record.methods.push(req.getMethod());
      record.interop.push(req.getHeader('Upload-Draft-Interop-Version') ?? null);
      if (req.getMethod() === 'PATCH' && record.resumeOffset === null) {
        record.resumeOffset = Number(req.getHeader('Upload-Offset'));
      }
    },
    ...extra,
  };
}

function run(upload) {
  return new Promise((resolve, reject) => {
    upload.options.onSuccess = () => resolve(upload);
    upload.options.onError = (err) => reject(err);
    upload.start();
  });
}

async function chunked() {
  const record = { methods: [], interop: [], resumeOffset: null };
  const upload = new Upload(fs.createReadStream(opts.file), baseOptions(record, {}));
  await run(upload);
  return { url: upload.url, methods: record.methods, interop: record.interop };
}

async function resume() {
  const firstRecord = { methods: [], interop: [], resumeOffset: null };
  const first = new Upload(fs.createReadStream(opts.file), baseOptions(firstRecord, {
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

  const record = { methods: [], interop: [], resumeOffset: null };
  const second = new Upload(fs.createReadStream(opts.file), baseOptions(record, {
    urlStorage: new FileUrlStorage(opts.storePath),
  }));
  const previous = await second.findPreviousUploads();
  if (previous.length === 0) throw new Error('FileUrlStorage holds no previous upload');
  second.resumeFromPreviousUpload(previous[0]);
  await run(second);
  return {
    url: second.url,
    firstUrl: first.url,
    abortedAt,
    resumeOffset: record.resumeOffset,
    methods: record.methods,
    interop: record.interop,
  };
}

const modes = { chunked, resume };
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
