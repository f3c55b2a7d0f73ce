/* The tusd-py upload page: sign-in, uploads with progress, and the file list.
 *
 * Token: pasted into the form or passed as #token=... (then removed from the
 * address bar); kept in sessionStorage, sent as Authorization: Bearer. With
 * auth off (meta tusd-auth) no token is needed. Progress of uploads made
 * elsewhere (other tabs, devices) comes from the live events WebSocket
 * (live.js); while it is down, from polling the list while any is uploading.
 * #library carries data-live="on" while the socket is connected. The list
 * itself, with jobs and the rows preview, is files.js.
 * localStorage "tusd-py.chunk-size" overrides the PATCH size (bytes).
 */
(function () {
  "use strict";

  const { Upload, errorOf, remembered, discard, live } = window.TusdPy;
  const $ = (id) => document.getElementById(id);
  const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
  const ENDPOINT = meta("tusd-endpoint");
  const AUTH = meta("tusd-auth") === "on";
  const TOKEN_KEY = "tusd-py.token";
  const CHUNK_SIZE = parseInt(localStorage.getItem("tusd-py.chunk-size") || "", 10) || 16 * 1024 * 1024;
  const MAX_PARALLEL = 3;
  const POLL_MS = 3000;
  const RELOAD_MS = 300;

  const state = { token: null, claims: {}, active: [], queue: [], poll: null, live: null, reload: null,
    missed: new Set() };

  // --- formatting -------------------------------------------------------------------

  function bytes(n) {
    if (n === null || n === undefined) return "?";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = n;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    const text = unit === 0 ? String(value) : value.toFixed(value < 10 ? 1 : 0).replace(/\.0$/, "");
    return `${text} ${units[unit]}`;
  }

  function duration(seconds) {
    if (!Number.isFinite(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  /* An error in words, from the server's JSON error code and message. */
  function describe(err) {
    switch (err.code) {
      case "ERR_MAX_SIZE_EXCEEDED": {
        const limit = /maximum size of (\d+) bytes/.exec(err.message || "");
        return limit ? `Too large: over your ${bytes(parseInt(limit[1], 10))} limit.` : `Too large: ${err.message}`;
      }
      case "ERR_FILE_TYPE_NOT_ALLOWED": {
        const kind = /file type (\S+)/.exec(err.message || "");
        return `File type not allowed${kind ? ` (${kind[1]})` : ""}: the server deleted the upload.`;
      }
      case "ERR_RATE_LIMITED":
      case "ERR_CONCURRENCY_LIMITED":
        return `Too many requests: try again in ${err.retryAfter || 1} s.`;
      case "ERR_UNAUTHENTICATED":
        return "Your token was refused (expired?). Sign in again.";
      case "ERR_NETWORK":
        return "The connection to the server was lost.";
      default:
        return err.message || String(err);
    }
  }

  // --- sign-in ------------------------------------------------------------------------

  function claimsOf(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
    } catch (_) {
      return {};
    }
  }

  function authHeaders() {
    return state.token ? { Authorization: `Bearer ${state.token}` } : {};
  }

  function owner() {
    return AUTH ? (state.claims.sub || "") : "local";
  }

  function signIn(token) {
    state.token = token;
    state.claims = claimsOf(token);
    sessionStorage.setItem(TOKEN_KEY, token);
    show();
  }

  function signOut(reason) {
    for (const upload of state.active) upload.pause();
    state.token = null;
    state.claims = {};
    sessionStorage.removeItem(TOKEN_KEY);
    $("signin-error").textContent = reason || "";
    show();
  }

  function show() {
    const signedIn = !AUTH || state.token !== null;
    $("signin").hidden = signedIn;
    $("uploader").hidden = !signedIn;
    $("library").hidden = !signedIn;
    $("sign-out").hidden = !(AUTH && signedIn);
    $("who").hidden = !signedIn;
    if (!signedIn) {
      stopPolling();
      stopLive();
      $("token").focus();
      return;
    }
    const tier = state.claims.tier ? ` (${state.claims.tier})` : "";
    $("who").textContent = AUTH ? `Signed in as ${state.claims.sub || "?"}${tier}` : "Auth is off: local admin";
    showPending();
    loadFiles(true);
    startLive();
  }

  /* Answer a 401 anywhere by asking for a new token. */
  function refused(err) {
    if (err && err.status === 401 && AUTH) {
      signOut(`${describe(err)} (${err.message})`);
      return true;
    }
    return false;
  }

  async function api(method, path, body) {
    const headers = authHeaders();
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (_) {
      throw new window.TusdPy.TusError(0, "ERR_NETWORK", "the connection to the server was lost");
    }
    const text = await res.text();
    if (!res.ok) throw errorOf(res.status, text, res.headers.get("Retry-After"));
    return text ? JSON.parse(text) : null;
  }

  // --- uploads ------------------------------------------------------------------------

  function addFiles(files) {
    for (const file of files) {
      const row = $("upload-row").content.firstElementChild.cloneNode(true);
      row.dataset.name = file.name;
      row.querySelector(".name").textContent = file.name;
      row.querySelector(".stats").textContent = `0 B of ${bytes(file.size)} · waiting`;
      row.querySelector("progress").setAttribute("aria-label", `Progress of ${file.name}`);
      $("uploads").prepend(row);
      const upload = new Upload(file, {
        endpoint: ENDPOINT,
        headers: authHeaders,
        owner: owner(),
        chunkSize: CHUNK_SIZE,
        metadata: { filename: file.name, filetype: file.type },
        onProgress: (offset, total) => progress(upload, offset, total),
        onStatus: (err, wait) => say(upload, err.status === 429 ? describe(err) : `${describe(err)} Retrying in ${wait} s…`, true),
        onCreated: (url) => created(upload, url),
      });
      upload.row = row;
      upload.samples = [];
      upload.paused = false;
      const pause = row.querySelector(".pause");
      pause.setAttribute("aria-label", `Pause ${file.name}`);
      pause.addEventListener("click", () => togglePause(upload));
      const cancel = row.querySelector(".cancel");
      cancel.setAttribute("aria-label", `Cancel ${file.name}`);
      cancel.addEventListener("click", () => cancelUpload(upload));
      state.queue.push(upload);
    }
    pump();
  }

  function pump() {
    while (state.active.length < MAX_PARALLEL && state.queue.length) run(state.queue.shift());
  }

  async function run(upload) {
    state.active.push(upload);
    upload.row.dataset.state = "uploading";
    say(upload, "");
    startPolling();
    try {
      const done = await upload.start();
      if (done) finished(upload);
    } catch (err) {
      if (!refused(err)) {
        upload.row.dataset.state = "failed";
        say(upload, describe(err), true);
        upload.row.querySelector(".pause").hidden = true;
      }
    } finally {
      state.active = state.active.filter((u) => u !== upload);
      pump();
      showPending();
    }
  }

  function finished(upload) {
    upload.row.dataset.state = "complete";
    upload.row.classList.add("done");
    upload.row.querySelector(".actions").hidden = true;
    const elapsed = (performance.now() - upload.started) / 1000;
    upload.row.querySelector(".stats").textContent =
      `${bytes(upload.file.size)} uploaded in ${duration(elapsed)}`;
    say(upload, "Done.");
    loadFiles(list.pages <= 1);
  }

  function created(upload, url) {
    upload.started = upload.started || performance.now();
    const id = url.split("/").pop();
    upload.row.dataset.id = id;
    api("GET", `/index-status/${encodeURIComponent(id)}`).then((doc) => {
      if (doc && doc.storage && doc.storage !== "disk") {
        upload.row.querySelector(".where").textContent = `stored in ${doc.storage.toUpperCase()}`;
      }
    }).catch(() => { /* the badge is only a hint */ });
  }

  function progress(upload, offset, total) {
    const now = performance.now();
    upload.started = upload.started || now;
    upload.samples.push([now, offset]);
    while (upload.samples.length > 2 && now - upload.samples[0][0] > 5000) upload.samples.shift();
    const [t0, b0] = upload.samples[0];
    const rate = now > t0 ? ((offset - b0) * 1000) / (now - t0) : 0;
    const eta = rate > 0 ? (total - offset) / rate : Infinity;
    const bar = upload.row.querySelector("progress");
    bar.value = total ? (offset * 100) / total : 100;
    upload.row.dataset.offset = String(offset);
    upload.row.querySelector(".stats").textContent =
      `${bytes(offset)} of ${bytes(total)} · ${bytes(Math.round(rate))}/s · ${duration(eta)} left`;
  }

  function say(upload, text, bad) {
    const message = upload.row.querySelector(".message");
    message.textContent = text;
    message.classList.toggle("bad", Boolean(bad));
  }

  function togglePause(upload) {
    const button = upload.row.querySelector(".pause");
    if (!upload.paused) {
      upload.paused = true;
      state.queue = state.queue.filter((u) => u !== upload);
      upload.pause();
      upload.row.dataset.state = "paused";
      button.textContent = "Resume";
      button.setAttribute("aria-label", `Resume ${upload.file.name}`);
      say(upload, "Paused.");
      return;
    }
    upload.paused = false;
    button.textContent = "Pause";
    button.setAttribute("aria-label", `Pause ${upload.file.name}`);
    if (!state.active.includes(upload)) run(upload);
  }

  async function cancelUpload(upload) {
    state.queue = state.queue.filter((u) => u !== upload);
    try {
      await upload.cancel();
      upload.row.remove();
      loadFiles(list.pages <= 1);
    } catch (err) {
      if (!refused(err)) say(upload, describe(err), true);
    }
  }

  function showPending() {
    const running = new Set(state.active.concat(state.queue).map((u) => u.key));
    const entries = remembered(owner()).filter((e) => !running.has(e.key));
    const list = $("pending-list");
    list.replaceChildren();
    for (const entry of entries) {
      const item = document.createElement("li");
      item.dataset.name = entry.name;
      const text = document.createElement("span");
      text.textContent = `${entry.name} (${bytes(entry.size)})`;
      const forget = document.createElement("button");
      forget.type = "button";
      forget.textContent = "Discard";
      forget.setAttribute("aria-label", `Discard the unfinished upload of ${entry.name}`);
      forget.addEventListener("click", async () => {
        await discard(entry, authHeaders()).catch(() => {});
        showPending();
      });
      item.append(text, forget);
      list.append(item);
    }
    $("pending").hidden = entries.length === 0;
  }

  // --- file list (files.js) ----------------------------------------------------------

  const list = window.TusdPy.fileList({
    endpoint: ENDPOINT,
    api,
    refused,
    describe,
    bytes,
    authHeaders,
    errorOf,
    say: (text) => { $("files-status").textContent = text; },
    startPolling,
    reloadSoon,
    connected: () => state.live !== null && state.live.connected,
  });

  function loadFiles(reset) {
    if (AUTH && !state.token) return Promise.resolve();
    return list.load(reset);
  }

  // --- live events -------------------------------------------------------------------

  function startLive() {
    stopLive();
    let first = true;
    state.live = live({
      token: () => state.token,
      onEvent: onLiveEvent,
      onChange: (up) => {
        $("library").dataset.live = up ? "on" : "off";
        if (up && !first) reloadSoon(); // catch up on what happened while it was down
        if (up) first = false;
      },
    });
  }

  function stopLive() {
    if (state.live !== null) state.live.close();
    state.live = null;
  }

  /* One event of this user's uploads: update its row in place, or reload the list. */
  function onLiveEvent(event) {
    if (!event.upload_id) {
      if (event.type.startsWith("job.")) reloadSoon();
      return;
    }
    if (event.type.startsWith("job.")) {
      list.onJobEvent(event); // updates the row's jobs in place (an open preview stays)
      return;
    }
    const tr = document.querySelector(`#files-body tr.file[data-id="${CSS.escape(event.upload_id)}"]`);
    if (event.type !== "upload.progress") {
      reloadSoon();
      return;
    }
    if (tr === null) {
      // not listed yet (its creation was missed): one reload per upload
      if (!state.missed.has(event.upload_id)) { state.missed.add(event.upload_id); reloadSoon(); }
      return;
    }
    tr.dataset.offset = String(event.offset);
    const cellState = tr.querySelector(".state-uploading");
    if (cellState && event.length) {
      cellState.textContent = `uploading ${Math.floor((event.offset * 100) / event.length)} %`;
    }
  }

  /* Reload the first page of the list once after a burst of events. */
  function reloadSoon() {
    if (state.reload !== null || list.pages > 1) return;
    state.reload = setTimeout(() => { state.reload = null; loadFiles(true); }, RELOAD_MS);
  }

  /* Poll the list while something is uploading (here or elsewhere) and the live
   * socket is down; stop when idle. */
  function startPolling() {
    if (state.poll !== null) return;
    state.poll = setInterval(() => {
      if (document.hidden || (state.live !== null && state.live.connected)) return;
      const uploading = state.active.length > 0 ||
        document.querySelector('#files-body tr.file[data-state="uploading"]') !== null;
      if (!uploading) { stopPolling(); return; }
      if (list.pages <= 1) loadFiles(true);
    }, POLL_MS);
  }

  function stopPolling() {
    if (state.poll !== null) clearInterval(state.poll);
    state.poll = null;
  }

  // --- wiring -------------------------------------------------------------------------

  function wire() {
    $("signin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      $("token").value = "";
      if (token) signIn(token);
    });
    $("sign-out").addEventListener("click", () => signOut(""));
    $("pick").addEventListener("change", (event) => {
      addFiles(Array.from(event.target.files));
      event.target.value = "";
    });
    const drop = $("drop");
    drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      addFiles(Array.from(event.dataTransfer.files));
    });
    $("refresh").addEventListener("click", () => loadFiles(true));
    $("more").addEventListener("click", () => loadFiles(false));
  }

  function init() {
    wire();
    const hash = new URLSearchParams(location.hash.slice(1));
    const linked = hash.get("token");
    if (linked) {
      history.replaceState(null, "", location.pathname + location.search);
      signIn(linked);
      return;
    }
    const kept = sessionStorage.getItem(TOKEN_KEY);
    if (kept) { signIn(kept); return; }
    show();
  }

  init();
})();
