// A tus-js-client (Node build) upload whose PATCH the server refuses before
// reading its body, for tests/interop/test_refusal_tus_js.py.
//
// Usage: node refused.mjs '<json>'  where json is
//   {"endpoint": URL, "headers": {...}, "size": N, "refuse": "offset" | "token", "deadlineMs": N}
// The whole upload is one PATCH of N zero bytes (chunkSize N, no retries);
// onBeforeRequest makes that PATCH wrong (Upload-Offset 7, or a malformed
// bearer token). Prints one JSON line: {"status": <HTTP status or null>,
// "body": <response body, or the error text when no response arrived>}.
import { Upload } from 'tus-js-client';

const opts = JSON.parse(process.argv[2]);
const deadline = setTimeout(() => {
  console.error(`deadline of ${opts.deadlineMs} ms exceeded`);
  process.exit(3);
}, opts.deadlineMs ?? 60000);

function report(result) {
  clearTimeout(deadline);
  console.log(JSON.stringify(result));
}

const upload = new Upload(Buffer.alloc(opts.size), {
  endpoint: opts.endpoint,
  headers: opts.headers ?? {},
  chunkSize: opts.size,
  retryDelays: [],
  onBeforeRequest(req) {
    if (req.getMethod() !== 'PATCH') return;
    if (opts.refuse === 'offset') req.setHeader('Upload-Offset', '7');
    else req.setHeader('Authorization', 'Bearer not.a.token');
  },
  onError(err) {
    const res = err.originalResponse;
    report(res ? { status: res.getStatus(), body: res.getBody() } : { status: null, body: String(err) });
  },
  onSuccess() {
    report({ status: 'success', body: '' });
  },
});
upload.start();
