/* The upload page's list of files, with their jobs and a rows preview.
 *
 * TusdPy.fileList(ctx) renders GET <endpoint> (paged) into #files-body and
 * returns {load(reset), pages, onJobEvent(event)}. ctx gives the page's
 * helpers: endpoint, api(method, path, body), refused(err), describe(err),
 * bytes(n), say(text) (the list's status line), startPolling(),
 * reloadSoon() and connected() (whether the live socket is up).
 *
 * Jobs: each complete row fetches /index-status/{id} for its index and
 * sha256 jobs and shows the latest of each kind in words (queued,
 * processing, ready, failed: error); job.* events from the socket update a
 * row in place (a finished job refetches the row, for its result); while the
 * socket is down, rows with unfinished jobs are polled. "Process" queues a
 * sha256 job (POST /process/{id}); its digest shows once it is ready.
 * A completed index job offers "Preview rows": a table of the first
 * PREVIEW_ROWS rows (GET <endpoint>{id}/rows), "N rows in all", and "More"
 * following next_cursor. The open preview survives a reload of the list.
 */
(function () {
  "use strict";

  const PAGE_SIZE = 20;
  const PREVIEW_ROWS = 20;
  const POLL_MS = 3000;
  const WORDS = { PENDING: "queued", PROCESSING: "processing", COMPLETED: "ready", FAILED: "failed" };
  const RANK = { PENDING: 0, PROCESSING: 1, COMPLETED: 2, FAILED: 2 };
  const USABLE = ["complete", "processing", "ready", "failed"];

  function fileList(ctx) {
    const $ = (id) => document.getElementById(id);
    const { api, refused, describe, bytes, say } = ctx;
    const ENDPOINT = ctx.endpoint;
    const list = { cursor: null, pages: 0, poll: null, preview: null };

    // --- rows of the list -------------------------------------------------------------

    async function load(reset) {
      const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
      if (!reset && list.cursor) params.set("cursor", list.cursor);
      try {
        const page = await api("GET", `${ENDPOINT}?${params}`);
        const at = focusInList();
        if (reset) { $("files-body").replaceChildren(); list.pages = 0; }
        list.pages += 1;
        const added = page.items.map(fileRow);
        $("files-body").append(...added);
        refocus(at); // new rows replaced the old: the keyboard stays on its button
        list.cursor = page.next_cursor;
        $("more").hidden = !list.cursor;
        const count = $("files-body").querySelectorAll("tr.file").length;
        say(count ? "" : "No files yet.");
        $("library").dataset.loaded = String(Date.now());
        if (page.items.some((d) => d.state === "uploading")) ctx.startPolling();
        keepPreview();
        for (const tr of added) {
          if (USABLE.includes(tr.dataset.state)) await refreshRow(tr);
        }
      } catch (err) {
        if (!refused(err)) say(describe(err));
      }
    }

    function rowOf(id) {
      return document.querySelector(`#files-body tr.file[data-id="${CSS.escape(id)}"]`);
    }

    /* Where the keyboard is in the list: a row's button (its class, else its label), or null. */
    function focusInList() {
      const el = document.activeElement;
      const tr = el instanceof HTMLButtonElement ? el.closest("#files-body tr.file") : null;
      return tr === null ? null : { id: tr.dataset.id, cls: el.className, label: el.getAttribute("aria-label") };
    }

    /* After a redraw, put the keyboard back on that button of that row, if both still exist. */
    function refocus(at) {
      const tr = at === null ? null : rowOf(at.id);
      if (tr === null || tr.contains(document.activeElement)) return;
      const same = (b) => (at.cls ? b.className === at.cls : b.getAttribute("aria-label") === at.label);
      const again = Array.from(tr.querySelectorAll("button")).find(same);
      if (again) again.focus();
    }

    function cell(label, content) {
      const td = document.createElement("td");
      td.dataset.label = label;
      if (typeof content === "string") td.textContent = content; else if (content) td.append(content);
      return td;
    }

    function button(text, label, handler) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = text;
      b.setAttribute("aria-label", label);
      b.addEventListener("click", handler);
      return b;
    }

    function stateText(doc) {
      return doc.state === "uploading" && doc.percent !== null ? `uploading ${Math.floor(doc.percent)} %` : doc.state;
    }

    function fileRow(doc) {
      const tr = document.createElement("tr");
      const name = doc.filename || doc.file_id;
      tr.className = "file";
      tr.dataset.id = doc.file_id;
      tr.dataset.state = doc.state;
      tr.dataset.offset = String(doc.offset);
      tr.doc = doc;
      tr.jobs = doc.jobs || [];
      const nameCell = cell("Name", name);
      nameCell.className = "name";
      if (doc.storage && doc.storage !== "disk") {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = doc.storage.toUpperCase();
        nameCell.append(badge);
      }
      const stateCell = cell("State", stateText(doc));
      stateCell.className = `state state-${doc.state}`;
      const size = cell("Size", doc.size === null ? `${bytes(doc.offset)} so far` : bytes(doc.size));
      const kind = cell("Type", doc.mime || "–");
      const next = doc.visibility === "public" ? "private" : "public";
      const vis = button(doc.visibility, `${name} is ${doc.visibility}; make it ${next}`, async () => {
        try {
          const answer = await api("PATCH", `${ENDPOINT}${doc.file_id}/visibility`, { visibility: next });
          const fresh = fileRow(Object.assign({}, doc, { visibility: answer.visibility, jobs: tr.jobs }));
          const at = focusInList();
          tr.replaceWith(fresh);
          refocus(at);
          keepPreview();
        } catch (err) {
          if (!refused(err)) say(describe(err));
        }
      });
      vis.className = "visibility";
      const jobs = cell("Jobs", null);
      jobs.className = "jobs";
      const actions = cell("Actions", null);
      actions.className = "actions";
      if (doc.state !== "uploading" && doc.state !== "expired") {
        actions.append(
          button("Copy link", `Copy a download link for ${name}`, () => copyLink(doc, name)),
          button("Download", `Download ${name}`, () => download(doc)),
        );
      }
      const del = button("Delete", `Delete ${name}`, () => remove(doc, name, tr));
      del.className = "delete";
      actions.append(del);
      tr.append(nameCell, stateCell, size, kind, cell("Visibility", vis), jobs, actions);
      renderJobs(tr);
      return tr;
    }

    // --- jobs -------------------------------------------------------------------------

    /* The latest job of each kind, oldest kind first. */
    function latest(jobs) {
      const byKind = new Map();
      for (const job of jobs) byKind.set(job.kind, job);
      return Array.from(byKind.values());
    }

    function renderJobs(tr) {
      const doc = tr.doc;
      const name = doc.filename || doc.file_id;
      const td = tr.querySelector("td.jobs");
      const items = document.createElement("ul");
      items.className = "job-list";
      const current = latest(tr.jobs);
      for (const job of current) {
        const li = document.createElement("li");
        li.dataset.kind = job.kind;
        li.dataset.status = job.status;
        li.className = `job-${(WORDS[job.status] || "queued")}`;
        li.textContent = `${job.kind}: ${WORDS[job.status] || job.status.toLowerCase()}`;
        if (job.status === "FAILED" && job.error) li.textContent += ` (${job.error})`;
        const digest = job.kind === "sha256" && job.result && job.result.sha256;
        if (job.status === "COMPLETED" && digest) {
          const code = document.createElement("code");
          code.className = "digest";
          code.textContent = digest;
          li.append(" ", code);
        }
        items.append(li);
      }
      const buttons = document.createElement("div");
      buttons.className = "job-actions";
      const index = current.find((j) => j.kind === "index");
      if (index && index.status === "COMPLETED") {
        const open = list.preview !== null && list.preview.id === doc.file_id;
        const b = button("Preview rows", `Preview the rows of ${name}`, () => togglePreview(tr));
        b.className = "preview";
        b.setAttribute("aria-expanded", String(open));
        if (open) b.setAttribute("aria-controls", list.preview.section.id);
        buttons.append(b);
      }
      const sha = current.find((j) => j.kind === "sha256");
      const busy = sha && RANK[sha.status] < 2;
      if (USABLE.includes(doc.state) && !busy && !(sha && sha.status === "COMPLETED")) {
        const b = button("Process", `Compute the sha256 of ${name}`, () => processRow(tr));
        b.className = "process";
        buttons.append(b);
      }
      const at = focusInList();
      td.replaceChildren(items, buttons);
      refocus(at); // a redraw keeps the keyboard where it was
      if (current.some((j) => RANK[j.status] < 2)) startJobPoll();
    }

    /* Merge job documents into the row: a job never goes back to an earlier status. */
    function mergeJobs(tr, incoming) {
      for (const job of incoming) {
        const at = tr.jobs.findIndex((j) => j.job_id === job.job_id);
        if (at < 0) tr.jobs.push(job);
        else if (RANK[job.status] >= RANK[tr.jobs[at].status]) tr.jobs[at] = Object.assign({}, tr.jobs[at], job);
      }
    }

    /* Refetch one row's status document (state and jobs with results). */
    async function refreshRow(tr) {
      try {
        const doc = await api("GET", `/index-status/${encodeURIComponent(tr.dataset.id)}`);
        mergeJobs(tr, doc.jobs || []);
        tr.doc = Object.assign({}, tr.doc, { state: doc.state, checksum: doc.checksum });
        tr.dataset.state = doc.state;
        const stateCell = tr.querySelector("td.state");
        stateCell.textContent = stateText(doc);
        stateCell.className = `state state-${doc.state}`;
        renderJobs(tr);
      } catch (err) {
        if (!refused(err) && err.status !== 404) say(describe(err));
      }
    }

    /* A job.* event of the live socket. */
    function onJobEvent(event) {
      const tr = rowOf(event.upload_id);
      if (tr === null) { ctx.reloadSoon(); return; }
      const { job_id, kind, status, attempts, error } = event;
      mergeJobs(tr, [{ job_id, kind, status, attempts, error, result: null }]);
      renderJobs(tr);
      if (RANK[status] === 2) refreshRow(tr);
    }

    async function processRow(tr) {
      const name = tr.doc.filename || tr.dataset.id;
      try {
        const job = await api("POST", `/process/${encodeURIComponent(tr.dataset.id)}`, { kind: "sha256" });
        mergeJobs(tr, [Object.assign({ attempts: 0, error: null, result: null }, job)]);
        renderJobs(tr);
        say(`Computing the sha256 of ${name}…`);
      } catch (err) {
        if (!refused(err)) say(describe(err));
      }
    }

    /* While the socket is down, refetch rows with unfinished jobs; stops when none is left. */
    function startJobPoll() {
      if (list.poll !== null) return;
      list.poll = setInterval(() => {
        const waiting = Array.from(document.querySelectorAll("#files-body tr.file"))
          .filter((tr) => latest(tr.jobs).some((j) => RANK[j.status] < 2));
        if (!waiting.length) { clearInterval(list.poll); list.poll = null; return; }
        if (document.hidden || ctx.connected()) return;
        for (const tr of waiting) refreshRow(tr);
      }, POLL_MS);
    }

    // --- rows preview -----------------------------------------------------------------

    function togglePreview(tr) {
      const open = list.preview;
      closePreview();
      if (open !== null && open.id === tr.dataset.id) return;
      const name = tr.doc.filename || tr.dataset.id;
      const id = tr.dataset.id;
      const section = document.createElement("section");
      section.className = "preview-panel";
      section.id = `preview-${id}`;
      const title = document.createElement("h3");
      title.id = `preview-title-${id}`;
      title.tabIndex = -1;
      title.textContent = `Rows of ${name}`;
      section.setAttribute("aria-labelledby", title.id);
      const total = document.createElement("p");
      total.className = "total hint";
      const table = document.createElement("table");
      table.className = "rows";
      const caption = document.createElement("caption");
      caption.className = "visually-hidden";
      caption.textContent = `Rows of ${name}`;
      table.append(caption, document.createElement("thead"), document.createElement("tbody"));
      const wrap = document.createElement("div");
      wrap.className = "table-wrap";
      wrap.append(table);
      const more = button("More", `More rows of ${name}`, () => morePreview());
      more.className = "more-rows";
      more.hidden = true;
      const close = button("Close", `Close the rows of ${name}`, () => {
        closePreview();
        const back = rowOf(id) && rowOf(id).querySelector(".preview");
        if (back) back.focus();
      });
      close.className = "close-preview";
      const bar = document.createElement("div");
      bar.className = "actions";
      bar.append(more, close);
      section.append(title, total, wrap, bar);
      const row = document.createElement("tr");
      row.className = "preview-row";
      const td = document.createElement("td");
      td.colSpan = 7;
      td.append(section);
      row.append(td);
      list.preview = { id, name, row, section, cursor: null, columns: null };
      tr.after(row);
      renderJobs(tr);
      title.focus();
      morePreview();
    }

    function closePreview() {
      const open = list.preview;
      if (open === null) return;
      list.preview = null;
      open.row.remove();
      const tr = rowOf(open.id);
      if (tr !== null) renderJobs(tr);
    }

    /* After the list was redrawn: put the open preview back under its row. */
    function keepPreview() {
      const open = list.preview;
      if (open === null) return;
      const tr = rowOf(open.id);
      if (tr === null) { list.preview = null; open.row.remove(); return; }
      tr.after(open.row);
      renderJobs(tr);
    }

    async function morePreview() {
      const open = list.preview;
      const params = new URLSearchParams({ limit: String(PREVIEW_ROWS) });
      if (open.cursor) params.set("cursor", open.cursor);
      const section = open.section;
      try {
        const page = await api("GET", `${ENDPOINT}${encodeURIComponent(open.id)}/rows?${params}`);
        if (open.columns === null) {
          open.columns = page.columns;
          const head = document.createElement("tr");
          for (const name of page.columns) {
            const th = document.createElement("th");
            th.scope = "col";
            th.textContent = name;
            head.append(th);
          }
          section.querySelector("thead").append(head);
        }
        const body = section.querySelector("tbody");
        for (const row of page.rows) {
          const tr = document.createElement("tr");
          for (const name of open.columns) {
            const value = row[name];
            tr.append(cell(name, value === null || value === undefined ? "" : String(value)));
          }
          body.append(tr);
        }
        open.cursor = page.next_cursor;
        const shown = body.children.length;
        section.querySelector(".total").textContent =
          `${page.total} ${page.total === 1 ? "row" : "rows"} in all; showing ${shown}.`;
        const more = section.querySelector(".more-rows");
        const hadFocus = document.activeElement === more;
        more.hidden = !open.cursor;
        if (hadFocus && more.hidden) section.querySelector(".close-preview").focus();
      } catch (err) {
        if (!refused(err)) section.querySelector(".total").textContent = describe(err);
      }
    }

    // --- actions ----------------------------------------------------------------------

    async function signedLink(doc) {
      return (await api("POST", `${ENDPOINT}${doc.file_id}/link`, {})).url;
    }

    async function copyLink(doc, name) {
      try {
        const url = await signedLink(doc);
        try {
          await navigator.clipboard.writeText(url);
          say(`Link to ${name} copied.`);
        } catch (_) {
          say(`Link to ${name}: ${url}`);
        }
      } catch (err) {
        if (!refused(err)) say(describe(err));
      }
    }

    async function download(doc) {
      try {
        const a = document.createElement("a");
        a.href = await signedLink(doc);
        a.download = doc.filename || "";
        document.body.append(a);
        a.click();
        a.remove();
      } catch (err) {
        if (!refused(err)) say(describe(err));
      }
    }

    async function remove(doc, name, tr) {
      if (!window.confirm(`Delete ${name}? This cannot be undone.`)) return;
      try {
        const res = await fetch(`${ENDPOINT}${doc.file_id}`, {
          method: "DELETE", headers: Object.assign({ "Tus-Resumable": "1.0.0" }, ctx.authHeaders()),
        });
        if (res.status !== 204 && res.status !== 404) throw ctx.errorOf(res.status, await res.text(), null);
        if (list.preview !== null && list.preview.id === doc.file_id) closePreview();
        tr.remove();
        say(`Deleted ${name}.`);
      } catch (err) {
        if (!refused(err)) say(describe(err));
      }
    }

    return {
      load,
      onJobEvent,
      get pages() { return list.pages; },
    };
  }

  window.TusdPy = Object.assign(window.TusdPy || {}, { fileList });
})();
