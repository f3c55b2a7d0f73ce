/* Live events for the upload page: a WebSocket to /events on this origin.
 *
 * TusdPy.live({token, onEvent, onChange}) connects, sends {"token": ...} as
 * the first message when there is a token (browsers cannot set headers on a
 * WebSocket), and calls onEvent(message) for each upload or job event of the
 * signed-in user (this tab's, other tabs' and other devices'). onChange(true)
 * once the server said "ready", onChange(false) when the socket is lost; it
 * reconnects with a bounded backoff, except after a refused token (4401),
 * where it stops (the page's polling stays the fallback). close() ends it.
 */
(function () {
  "use strict";

  const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];
  const REFUSED = 4401;

  function live(options) {
    const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/events`;
    let socket = null;
    let failures = 0;
    let timer = null;
    let closed = false;
    let ready = false;

    function change(value) {
      if (ready !== value) {
        ready = value;
        options.onChange(value);
      }
    }

    function open() {
      timer = null;
      if (closed) return;
      try {
        socket = new WebSocket(url);
      } catch (_) {
        retry();
        return;
      }
      socket.addEventListener("open", () => {
        const token = options.token();
        if (token) socket.send(JSON.stringify({ token }));
      });
      socket.addEventListener("message", (event) => {
        let message;
        try { message = JSON.parse(event.data); } catch (_) { return; }
        if (message.type === "ready") {
          failures = 0;
          change(true);
          return;
        }
        options.onEvent(message);
      });
      socket.addEventListener("close", (event) => {
        socket = null;
        change(false);
        if (event.code === REFUSED) return; // a new sign-in starts a new connection
        retry();
      });
    }

    function retry() {
      if (closed || timer !== null) return;
      timer = setTimeout(open, BACKOFF_MS[Math.min(failures, BACKOFF_MS.length - 1)]);
      failures += 1;
    }

    open();
    return {
      get connected() { return ready; },
      close() {
        closed = true;
        if (timer !== null) clearTimeout(timer);
        if (socket !== null) socket.close(1000, "signed out");
        change(false);
      },
    };
  }

  window.TusdPy = Object.assign(window.TusdPy || {}, { live });
})();
