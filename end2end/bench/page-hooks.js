// Page-side instrumentation shared by the termroom and WeTTY pages (injected
// with addInitScript before any page script runs, so both apps are timed by
// the same code). All times are performance.now() in the page.
//
//  - WebSocket: the constructor is wrapped so every socket gets a `message`
//    listener registered before the app's own handler; it timestamps each
//    incoming message and extracts the terminal payload (termroom: postcard
//    ServerFrame::Output = variant 0, varint seq, varint length, bytes;
//    WeTTY: socket.io text packet 42["data","..."]).
//  - keydown: a capture-phase listener on window (registered first, so it
//    runs before xterm's handlers) stamps t0 and posts a MessageChannel ping
//    whose arrival says when the main thread was free again.
//  - the terminal: `attach(term)` wraps the instance's `write` (counts and
//    verifies every byte handed to xterm) and listens to `onWriteParsed`
//    (the character is in the buffer); `onRender` covering the row says when
//    the active renderer drew it (with the DOM renderer the row's text is
//    checked as well; with WebGL there is no row text to read).
(() => {
  const now = () => performance.now();
  const B = (window.__bench = {
    sockets: [],
    wsMsgs: 0,
    wsPayload: 0,
    written: 0,
    term: null,
    key: null,
    cc: null,
    bulk: null,
    errors: [],
  });

  // ------------------------------------------------------------ WebSocket
  function payload(data) {
    if (typeof data === 'string') {
      if (data.startsWith('42[')) {
        try {
          const m = JSON.parse(data.slice(2));
          if (m[0] === 'data' && typeof m[1] === 'string') return m[1];
        } catch { /* not an event packet */ }
      }
      return null;
    }
    if (data instanceof ArrayBuffer) {
      const u = new Uint8Array(data);
      if (u.length < 3 || u[0] !== 0) return null; // not Output
      let i = 1;
      while (u[i] & 0x80) i++;
      i++; // seq varint
      let len = 0;
      let mul = 1;
      for (;;) {
        const b = u[i++];
        len += (b & 0x7f) * mul;
        mul *= 128;
        if (b < 0x80) break;
      }
      return u.subarray(i, i + len);
    }
    return null;
  }
  function contains(p, k) {
    return typeof p === 'string' ? p.includes(k.ch) : p.includes(k.code);
  }
  function onWs(e) {
    const t = now();
    B.wsMsgs++;
    const p = payload(e.data);
    if (!p) return;
    B.wsPayload += p.length;
    const k = B.key;
    if (k && k.t0 !== undefined && k.ws === undefined && contains(p, k)) {
      k.ws = t;
      check(k);
    }
    const cc = B.cc;
    if (cc && cc.t0 !== undefined && cc.prompt === undefined) cc.wsAfter += p.length;
  }
  const Native = window.WebSocket;
  class HookedWebSocket extends Native {
    constructor(...args) {
      super(...args);
      B.sockets.push(this);
      this.addEventListener('message', onWs);
    }
  }
  window.WebSocket = HookedWebSocket;

  // ------------------------------------------------------------ keydown
  window.addEventListener('keydown', (e) => {
    const t = now();
    const k = B.key;
    if (k && k.t0 === undefined && e.key === k.ch && !e.ctrlKey) {
      k.t0 = t;
      k.evt = e.timeStamp;
      const mc = new MessageChannel();
      mc.port1.onmessage = () => {
        k.free = now();
        check(k);
      };
      mc.port2.postMessage(0);
    }
    const cc = B.cc;
    if (cc && cc.t0 === undefined && e.ctrlKey && (e.key === 'c' || e.key === 'C')) {
      cc.t0 = t;
      cc.written0 = B.written;
    }
    const bk = B.bulk;
    if (bk && bk.t0 === undefined && e.key === 'Enter') bk.t0 = t;
  }, true);

  // ------------------------------------------------------------ terminal
  function cellAt(term, p) {
    const cols = term.cols;
    const line = term.buffer.active.getLine(Math.floor(p / cols));
    return line?.getCell(p % cols)?.getChars();
  }
  function rowsEl(term) {
    return term.element?.querySelector('.xterm-rows');
  }
  /** The DOM renderer's text of buffer line `abs`, or null when it is not on screen. */
  function domRow(term, abs) {
    const rows = rowsEl(term);
    if (!rows) return null;
    const r = abs - term.buffer.active.viewportY;
    if (r < 0 || r >= rows.children.length) return null;
    return rows.children[r].textContent.replace(/\u00a0/g, ' ');
  }
  function check(k) {
    if (k.resolved) return;
    if (k.t0 !== undefined && k.ws !== undefined && k.parsed !== undefined && k.cat !== undefined
        && k.dom !== undefined && k.free !== undefined) {
      k.resolved = true;
      k.resolve(k);
    }
  }
  function onParsed() {
    const t = now();
    const term = B.term;
    const k = B.key;
    if (k && k.t0 !== undefined) {
      if (k.parsed === undefined && cellAt(term, k.p) === k.ch) {
        k.parsed = t;
      }
      if (k.cat === undefined && cellAt(term, k.p + 1) === k.ch) k.cat = t;
      check(k);
    }
    const cc = B.cc;
    if (cc && cc.t0 !== undefined && cc.prompt === undefined) {
      const buf = term.buffer.active;
      const abs = buf.baseY + buf.cursorY;
      const text = buf.getLine(abs)?.translateToString(true);
      if (text?.trimEnd() === cc.prompt0 && buf.cursorX === cc.promptLen) {
        cc.prompt = t;
        cc.abs = abs;
        cc.bytesAfter = B.written - cc.written0;
      }
    }
  }
  // Called from xterm's onRender (rows start..end, viewport-relative, were
  // just drawn by whichever renderer is active). With the DOM renderer the
  // row's text is checked too.
  function domCheck(ev) {
    const t = now();
    const term = B.term;
    const buf = term.buffer.active;
    const drawn = (abs) => {
      const r = abs - buf.viewportY;
      return ev && r >= ev.start && r <= ev.end;
    };
    const k = B.key;
    if (k && k.parsed !== undefined && k.dom === undefined) {
      const abs = Math.floor(k.p / term.cols);
      const row = domRow(term, abs);
      if (drawn(abs) && (row === null || row[k.p % term.cols] === k.ch)) {
        k.dom = t;
        check(k);
      }
    }
    const cc = B.cc;
    if (cc && cc.prompt !== undefined && cc.dom === undefined) {
      const row = domRow(term, cc.abs);
      if (drawn(cc.abs) && (row === null || row.trimEnd() === cc.prompt0)) {
        cc.dom = t;
        cc.resolve(cc);
      }
    }
  }

  // The bulk stream: line i is 8 digits, a space, 54 characters derived from
  // i, then CR LF (the tty turns LF into CR LF); framed by ==BEGIN== and ==END==.
  const BEGIN = '==BEGIN==\r\n';
  const END = '==END==\r\n';
  const LINE = 65;
  function feedBulk(bk, data) {
    const isStr = typeof data === 'string';
    const n = data.length;
    let i = 0;
    if (bk.state === 'seek') {
      const s = isStr ? data : String.fromCharCode.apply(null, data.length > 65536 ? data.subarray(0, 65536) : data);
      const hay = bk.tail + s;
      const at = hay.indexOf(BEGIN);
      if (at < 0) {
        bk.tail = hay.slice(-BEGIN.length);
        if (n > 65536) bk.state = 'failed', bk.mismatch = 'begin marker not found in a large first chunk';
        return false;
      }
      i = at + BEGIN.length - bk.tail.length;
      bk.state = 'body';
      bk.tFirst = now();
    }
    if (bk.state === 'body') {
      let line = bk.line;
      let col = bk.col;
      let digits = bk.digits;
      for (; i < n; i++) {
        const c = isStr ? data.charCodeAt(i) : data[i];
        let want;
        if (col < 8) want = digits.charCodeAt(col);
        else if (col === 8) want = 32;
        else if (col < 63) want = 33 + ((line * 7 + col - 9) % 94);
        else if (col === 63) want = 13;
        else want = 10;
        if (c !== want) {
          bk.state = 'failed';
          bk.mismatch = `byte ${bk.bytes} (line ${line}, column ${col}): got ${c}, expected ${want}`;
          return false;
        }
        bk.bytes++;
        col++;
        if (col === LINE) {
          col = 0;
          line++;
          if (line === bk.lines) {
            i++;
            bk.state = 'end';
            break;
          }
          digits = String(line).padStart(8, '0');
        }
      }
      bk.line = line;
      bk.col = col;
      bk.digits = digits;
    }
    if (bk.state === 'end') {
      for (; i < n && bk.endAt < END.length; i++) {
        const c = isStr ? data.charCodeAt(i) : data[i];
        if (c !== END.charCodeAt(bk.endAt)) {
          bk.state = 'failed';
          bk.mismatch = `after ${bk.lines} lines: got ${c} where the end marker was expected`;
          return false;
        }
        bk.endAt++;
      }
      if (bk.endAt === END.length) {
        bk.state = 'done';
        bk.tEndFed = now();
        return true;
      }
    }
    return false;
  }

  B.attach = (term) => {
    if (B.term === term) return;
    if (B.term) throw new Error('a second terminal');
    B.term = term;
    const proto = Object.getPrototypeOf(term);
    let protoWrite = proto.write;
    for (let p = proto; p && !Object.prototype.hasOwnProperty.call(p, 'write'); p = Object.getPrototypeOf(p)) protoWrite = p.write;
    term.write = function write(data, cb) {
      B.written += data.length;
      const bk = B.bulk;
      if (bk && (bk.state === 'seek' || bk.state === 'body' || bk.state === 'end') && feedBulk(bk, data)) {
        const inner = cb;
        cb = () => {
          bk.tEnd = now();
          bk.resolve(bk);
          if (inner) inner();
        };
      }
      if (bk && bk.state === 'failed') bk.resolve(bk);
      return protoWrite.call(this, data, cb);
    };
    term.onWriteParsed(onParsed);
    term.onRender(domCheck);
  };

  B.renderer = () => {
    const el = B.term?.element;
    if (!el) return 'none';
    if (el.querySelector('canvas')) return 'webgl/canvas';
    if (rowsEl(B.term)?.children.length) return 'dom';
    return 'unknown';
  };

  /** Arms a keystroke measurement for `ch`; returns a promise of its timings. */
  B.armKey = (ch) => {
    const term = B.term;
    const buf = term.buffer.active;
    const cols = term.cols;
    const x = buf.cursorX;
    const abs = buf.baseY + buf.cursorY;
    const p = x >= cols ? (abs + 1) * cols : abs * cols + x;
    let resolve;
    const done = new Promise((r) => { resolve = r; });
    B.key = { ch, code: ch.charCodeAt(0), p, resolve, done };
    return true;
  };
  B.keyResult = async (timeoutMs) => {
    const k = B.key;
    const res = await Promise.race([k.done, new Promise((r) => setTimeout(() => r(null), timeoutMs))]);
    const pick = ({ t0, evt, ws, parsed, cat, dom, free }) => ({ t0, evt, ws, parsed, cat, dom, free });
    return { ok: res !== null, ...pick(k) };
  };

  B.armCtrlC = (prompt) => {
    let resolve;
    const done = new Promise((r) => { resolve = r; });
    B.cc = { prompt0: prompt.trimEnd(), promptLen: prompt.length, wsAfter: 0, resolve, done };
  };
  B.ctrlCResult = async (timeoutMs) => {
    const cc = B.cc;
    const res = await Promise.race([cc.done, new Promise((r) => setTimeout(() => r(null), timeoutMs))]);
    const { t0, prompt, dom, bytesAfter, wsAfter } = cc;
    B.cc = null;
    return { ok: res !== null, t0, prompt, dom, bytesAfter, wsAfter, origin: performance.timeOrigin };
  };

  B.armBulk = (lines) => {
    let resolve;
    const done = new Promise((r) => { resolve = r; });
    B.bulk = { state: 'seek', tail: '', lines, line: 0, col: 0, digits: '00000000', bytes: 0, endAt: 0, resolve, done };
  };
  B.bulkResult = async (timeoutMs) => {
    const bk = B.bulk;
    const res = await Promise.race([bk.done, new Promise((r) => setTimeout(() => r(null), timeoutMs))]);
    const { state, mismatch, bytes, line, t0, tFirst, tEndFed, tEnd } = bk;
    B.bulk = null;
    return { ok: res !== null, state, mismatch, bytes, line, t0, tFirst, tEndFed, tEnd };
  };
})();
