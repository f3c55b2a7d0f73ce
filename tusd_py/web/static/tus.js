/* A small tus 1.0.0 client for the tusd-py upload page.
 *
 * TusdPy.Upload(file, options) uploads one File: POST to create (or HEAD to
 * resume a URL remembered in localStorage under the file's name, size and
 * mtime), then PATCH chunks with XHR (for upload progress). pause() aborts the
 * request in flight (the server keeps what it received; start() asks HEAD
 * where to go on); cancel() also DELETEs the upload. Network errors, 5xx, 423
 * and 409 are retried with a bounded backoff; 429 waits for Retry-After. Any
 * other refusal ends the upload with a TusError carrying the server's JSON
 * error code and message.
 */
(function () {
  "use strict";

  const TUS_VERSION = "1.0.0";
  const STORE_PREFIX = "tusd-py.upload:";
  const BACKOFF = [1, 2, 4, 8, 15];

  class TusError extends Error {
    constructor(status, code, message, retryAfter) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  function b64(text) {
    let binary = "";
    for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
    return btoa(binary);
  }

  function encodeMetadata(metadata) {
    return Object.entries(metadata)
      .filter(([, value]) => value !== undefined && value !== null && value !== "")
      .map(([key, value]) => `${key} ${b64(String(value))}`)
      .join(",");
  }

  /* The TusError for a refused response: the server's {"error": {code, message}}. */
  function errorOf(status, body, retryAfter) {
    let code = `HTTP_${status}`;
    let message = `the server answered ${status}`;
    try {
      const parsed = JSON.parse(body);
      if (parsed && parsed.error) {
        code = parsed.error.code || code;
        message = parsed.error.message || message;
      }
    } catch (_) { /* not JSON: keep the status */ }
    const seconds = parseInt(retryAfter || "", 10);
    return new TusError(status, code, message, Number.isFinite(seconds) ? seconds : null);
  }

  function retryable(err) {
    return err.status === 0 || err.status >= 500 || err.status === 423 || err.status === 409 ||
      err.status === 429;
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  function fingerprint(file, owner) {
    return STORE_PREFIX + JSON.stringify([owner || "", file.name, file.size, file.lastModified]);
  }

  /* Unfinished uploads remembered in localStorage: [{key, url, name, size, owner}]. */
  function remembered(owner) {
    const found = [];
    for (let i = 0; i < localStorage.length; i++) {
      const key = localStorage.key(i);
      if (!key || !key.startsWith(STORE_PREFIX)) continue;
      try {
        const entry = JSON.parse(localStorage.getItem(key));
        if (entry && entry.url && (entry.owner || "") === (owner || "")) found.push({ key, ...entry });
      } catch (_) { localStorage.removeItem(key); }
    }
    return found;
  }

  class Upload {
    /* options: endpoint, headers() -> {Authorization...}, chunkSize, owner, metadata,
     * onProgress(offset, total), onStatus(text), onCreated(url) */
    constructor(file, options) {
      this.file = file;
      this.options = options;
      this.url = null;
      this.offset = 0;
      this.xhr = null;
      this.stopper = new AbortController();
      this.key = fingerprint(file, options.owner);
    }

    headers(extra) {
      return Object.assign({ "Tus-Resumable": TUS_VERSION }, this.options.headers(), extra || {});
    }

    /* Runs until complete (resolves), paused or cancelled (resolves with false), or refused
     * (rejects with TusError). */
    async start() {
      this.stopper = new AbortController();
      let failures = 0;
      let stale = this.url !== null; // resumed after pause: the server may hold more bytes
      while (!this.stopper.signal.aborted) {
        try {
          if (stale) {
            stale = false;
            if (!await this.resync()) this.url = null;
          }
          if (this.url === null) await this.locate();
          if (this.stopper.signal.aborted) break;
          while (this.offset < this.file.size && !this.stopper.signal.aborted) {
            const before = this.offset;
            this.offset = await this.patch(this.offset);
            if (this.offset > before) failures = 0;
          }
          if (this.offset >= this.file.size && !this.stopper.signal.aborted) {
            localStorage.removeItem(this.key);
            return true;
          }
        } catch (err) {
          if (this.stopper.signal.aborted || err.code === "ABORTED") break;
          if (!(err instanceof TusError) || !retryable(err) || failures >= BACKOFF.length) throw err;
          const wait = err.retryAfter !== null && err.retryAfter !== undefined
            ? err.retryAfter : BACKOFF[failures];
          failures += 1;
          this.options.onStatus(err, wait);
          await sleep(wait * 1000, this.stopper.signal);
          if (this.url !== null && !this.stopper.signal.aborted) {
            try {
              if (!await this.resync()) this.url = null;
            } catch (_) { /* still unreachable: the next round retries */ }
          }
        }
      }
      return false;
    }

    /* Resume from a remembered URL (HEAD) or create a new upload (POST). */
    async locate() {
      const saved = localStorage.getItem(this.key);
      if (saved) {
        try {
          this.url = JSON.parse(saved).url;
        } catch (_) {
          this.url = null;
        }
        if (this.url && await this.resync()) return;
        localStorage.removeItem(this.key);
        this.url = null;
      }
      const res = await fetch(this.options.endpoint, {
        method: "POST",
        headers: this.headers({
          "Upload-Length": String(this.file.size),
          "Upload-Metadata": encodeMetadata(this.options.metadata || {}),
        }),
      });
      if (res.status !== 201) throw errorOf(res.status, await res.text(), res.headers.get("Retry-After"));
      this.url = new URL(res.headers.get("Location"), location.href).href;
      this.offset = parseInt(res.headers.get("Upload-Offset") || "0", 10);
      localStorage.setItem(this.key, JSON.stringify({
        url: this.url, name: this.file.name, size: this.file.size, owner: this.options.owner || "",
        created: Date.now(),
      }));
      this.options.onCreated(this.url);
    }

    /* HEAD: the server's offset; false when the upload no longer exists. */
    async resync() {
      let res;
      try {
        res = await fetch(this.url, { method: "HEAD", headers: this.headers(), cache: "no-store" });
      } catch (_) {
        throw new TusError(0, "ERR_NETWORK", "the connection to the server was lost");
      }
      if (res.status === 404 || res.status === 410 || res.status === 403) return false;
      if (!res.ok) throw errorOf(res.status, "", res.headers.get("Retry-After"));
      const length = parseInt(res.headers.get("Upload-Length") || "-1", 10);
      if (length !== this.file.size) return false;
      this.offset = parseInt(res.headers.get("Upload-Offset") || "0", 10);
      this.options.onProgress(this.offset, this.file.size);
      return true;
    }

    patch(offset) {
      return new Promise((resolve, reject) => {
        const size = this.options.chunkSize;
        const end = Math.min(offset + size, this.file.size);
        const xhr = new XMLHttpRequest();
        this.xhr = xhr;
        xhr.open("PATCH", this.url);
        const headers = this.headers({
          "Upload-Offset": String(offset),
          "Content-Type": "application/offset+octet-stream",
        });
        for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
        xhr.upload.onprogress = (event) => this.options.onProgress(offset + event.loaded, this.file.size);
        xhr.onload = () => {
          this.xhr = null;
          if (xhr.status === 204) {
            const next = parseInt(xhr.getResponseHeader("Upload-Offset") || "", 10);
            this.options.onProgress(next, this.file.size);
            resolve(next);
          } else {
            reject(errorOf(xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After")));
          }
        };
        xhr.onerror = () => { this.xhr = null; reject(new TusError(0, "ERR_NETWORK", "the connection to the server was lost")); };
        xhr.onabort = () => { this.xhr = null; reject(new TusError(0, "ABORTED", "paused")); };
        xhr.send(this.file.slice(offset, end));
      });
    }

    pause() {
      this.stopper.abort();
      if (this.xhr) this.xhr.abort();
    }

    /* Stop and delete the upload on the server; forgets it locally. */
    async cancel() {
      this.pause();
      localStorage.removeItem(this.key);
      if (this.url === null) return;
      const res = await fetch(this.url, { method: "DELETE", headers: this.headers() });
      if (res.status !== 204 && res.status !== 404 && res.status !== 410) {
        throw errorOf(res.status, await res.text(), res.headers.get("Retry-After"));
      }
    }
  }

  /* DELETE a remembered upload by URL and forget it. */
  async function discard(entry, headers) {
    localStorage.removeItem(entry.key);
    await fetch(entry.url, { method: "DELETE", headers: Object.assign({ "Tus-Resumable": TUS_VERSION }, headers) });
  }

  window.TusdPy = { Upload, TusError, errorOf, remembered, discard, fingerprint, TUS_VERSION };
})();
