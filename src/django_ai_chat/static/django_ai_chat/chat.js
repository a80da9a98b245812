/*
 * Chat UI behaviour, shipped by django-ai-chat as a static file (to change it, see the README,
 * "Styling and scripts"). Vanilla JS on top of htmx.
 *
 * Each element with `data-chat-root` (the full page or an embedded component) gets one `Chat`:
 * - an EventSource on `data-stream-url` carrying the cursor (`after`, `partial`, `end`), so a
 *   reconnect after a reload, a dropped network or a server restart resumes exactly;
 * - `message` events (server-rendered HTML) replace or insert a message by its id;
 * - `delta` events append to a raw Markdown buffer, rendered with the vendored marked +
 *   DOMPurify once per animation frame, until the final `message` event replaces it;
 * - `thinking` events do the same for the model's reasoning, in the message's "Thinking"
 *   section (`[data-thinking]`: open while the model thinks, folded once its answer starts);
 *   the cursor's `thinking` says how much of it the page holds;
 * - `conversation` events refresh the sidebar; `removed` events drop a message.
 * When a streamed answer ends, `<app>:answered` is dispatched on the root (it bubbles) with
 * `detail: { conversationId, messageId, streamedText, streamedThinking, stopped }`,
 * `streamedText` / `streamedThinking` being the text and reasoning this page assembled from the
 * stream (the final HTML has replaced them by then).
 * A response to the chat's own requests that is not the chat's (a log-in page after the session
 * ended, a CSRF 403, a 500 page, a proxy's error page) is never swapped in: the typed text stays
 * (also kept in sessionStorage across a sign-in) and a notice says what to do, with a "Sign in
 * again" link that returns to this page. `data-connected` on the root drives a "Reconnecting…"
 * indicator while the stream is down.
 * Branches: "Edit" on a message of the person's opens its edit form in place (Enter sends, Escape
 * cancels, a refusal shows in the form); the new version and its answer arrive over the stream,
 * as does what a `‹ 2/3 ›` switcher brings (`data-branch-switch`), in every open tab; the focus
 * follows the switch to the new version's switcher.
 * Files: the composer's "Attach files" button, a drop on the chat and a paste into the text box
 * all add to its file input (`data-attach-input`), listed as chips with a remove button; when
 * the server refuses the message (too big, wrong type, ...) the new composer gets them back.
 * It also wires the composer (Enter sends, Shift+Enter adds a line), the drawer, the dialogs,
 * auto-scroll (unless the reader scrolled up) and, in a component, navigation without leaving
 * the host page: `<app>:navigate` is dispatched with `detail.conversationId`.
 */
(() => {
  "use strict";

  // Two generated apps on one page both load this file: the first copy serves every chat root.
  if (window.djangoAiChat) return;

  // -- translations ------------------------------------------------------------------------------
  // Every string this file shows goes through gettext / ngettext / interpolate (the names and
  // behaviour of Django's JavaScript catalog). Write msgids as plain double-quoted literals,
  // `gettext("Copy")`: the server finds them in this file. The catalog is a JSON script the chat
  // carries (`{% ai_chat_i18n %}` of `{% load ai_chat %}`, in _chat.html): the server translates
  // these msgids into the request's active language, so an embedded component needs no URL of
  // its own and never meets a host page's `django.gettext`. Without it (an app generated before
  // translations) the English msgids show.
  let catalog = null;
  let catalogLanguage = "";

  function translations() {
    if (catalog) return catalog;
    const script = document.querySelector("script[data-chat-i18n]");
    if (!script) return {};
    try {
      const data = JSON.parse(script.textContent);
      catalog = data.catalog || {};
      catalogLanguage = data.language || "";
    } catch {
      catalog = {};
    }
    return catalog;
  }

  function gettext(msgid) {
    const text = translations()[msgid];
    return typeof text === "string" && text ? text : msgid;
  }

  // Which of a language's plural forms `count` takes, from the browser's CLDR rules: gettext
  // orders the forms as CLDR's categories (one, few, many, other) for the languages we ship.
  function pluralIndex(count, forms) {
    if (forms < 2) return 0;
    const language = catalogLanguage || document.documentElement.lang || "en";
    let rules;
    try {
      rules = new Intl.PluralRules(language);
    } catch {
      return count === 1 ? 0 : 1;
    }
    const category = rules.select(count);
    if (forms === 2) return category === "one" ? 0 : 1;
    const order = ["zero", "one", "two", "few", "many", "other"].filter((c) =>
      rules.resolvedOptions().pluralCategories.includes(c),
    );
    return Math.min(Math.max(order.indexOf(category), 0), forms - 1);
  }

  function ngettext(singular, plural, count) {
    const forms = translations()[singular];
    if (Array.isArray(forms) && forms.length) {
      const text = forms[pluralIndex(count, forms.length)];
      if (text) return text;
    }
    return count === 1 ? singular : plural;
  }

  // interpolate("%s of %s", [2, 3]) or interpolate("%(n)s of %(total)s", { n: 2, total: 3 }).
  function interpolate(format, values) {
    if (Array.isArray(values)) {
      let i = 0;
      return format.replace(/%s/g, () => String(values[i++] ?? ""));
    }
    return format.replace(/%\((\w+)\)s/g, (_, name) => String(values?.[name] ?? ""));
  }

  // Also for host pages and templates' own scripts: window.djangoAiChat.gettext("Copy").
  window.djangoAiChat = { gettext, ngettext, interpolate };

  const STICK_PX = 64;
  const MAX_RETRY_MS = 10000;
  // Nothing the model writes may load by itself: an image URL can carry data out of the page
  // (prompt injection). As on the server, raw HTML shows as text and images become links;
  // DOMPurify also drops every element and attribute that fetches a URL, should one slip by.
  const SANITIZE = {
    USE_PROFILES: { html: true },
    FORBID_TAGS: [
      "style", "form", "input", "button", "textarea", "select", "iframe",
      "img", "picture", "source", "video", "audio", "track", "object", "embed", "link",
    ],
    FORBID_ATTR: ["style", "src", "srcset", "background", "poster", "action", "formaction"],
  };
  const escapeHTML = (text) =>
    String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  let markdown = null;
  // Where this file is served from: the vendored scripts sit beside it.
  const scriptBase = document.currentScript?.src?.replace(/[^/]*$/, "") || "";
  const chats = new WeakMap();

  // Enter sends (the composer, an edit); Shift+Enter adds a line, and so does Enter mid-IME.
  const sendsOnEnter = (event) =>
    event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey;
  const codePoints = (text) => Array.from(text).length;
  const formatSize = (size) =>
    size < 1000 ? `${size} B` : size < 1e6 ? `${(size / 1000).toFixed(1)} KB` : `${(size / 1e6).toFixed(1)} MB`;
  const messageId = (el) => el.id.slice("message-".length);

  // The raw Markdown an incomplete message carries: its text's script is the article's child,
  // its reasoning's is the Thinking section's.
  function readRaw(el, selector = ':scope > script[type="application/json"]') {
    const script = el.querySelector(selector);
    if (!script) return null;
    try {
      return JSON.parse(script.textContent);
    } catch {
      return null;
    }
  }

  function renderMarkdown(raw) {
    if (!window.marked || !window.DOMPurify) return null;
    if (markdown === null) {
      markdown = new window.marked.Marked({
        gfm: true,
        async: false,
        renderer: {
          html: ({ text }) => escapeHTML(text),
          code: ({ text, lang }) => {
            const language = (lang || "").match(/^[\w+#.-]{1,40}/)?.[0] || "";
            const attr = language ? ` data-lang="${escapeHTML(language)}"` : "";
            return `<div class="highlight"${attr}><pre><code>${escapeHTML(text)}\n</code></pre></div>`;
          },
          image: ({ href, text }) =>
            `<a href="${escapeHTML(href)}" target="_blank" rel="noopener noreferrer nofollow">` +
            `${escapeHTML(text || href)}</a>`,
        },
      });
    }
    return window.DOMPurify.sanitize(markdown.parse(raw), SANITIZE);
  }

  // Code is highlighted by highlight.js in the browser, while it streams and in the final HTML
  // alike (the server's Pygments markup is only for pages without script): one highlighter, so
  // nothing changes style when the answer completes. Blocks keep the server's shape:
  // <div class="highlight" data-lang="…"><pre><code>.
  const HIGHLIGHT_MAX_CHARS = 100000;
  const highlighted = new Map(); // "lang\0code" -> HTML, for blocks re-rendered every frame
  let highlightLoading = null;

  function loadHighlighter() {
    // Apps generated before highlight.js was vendored do not load it: fetch it beside this file.
    if (window.hljs || highlightLoading || !scriptBase) return;
    highlightLoading = document.createElement("script");
    highlightLoading.src = `${scriptBase}vendor/highlight.min.js`;
    highlightLoading.addEventListener("load", () => {
      for (const code of document.querySelectorAll("[data-chat-root] .highlight > pre > code")) {
        highlightCode(code, code.closest(".highlight").dataset.lang);
      }
    });
    document.head.append(highlightLoading);
  }

  function highlightCode(code, lang) {
    const text = code.textContent.replace(/\n$/, "");
    const hljs = window.hljs;
    if (!hljs) {
      loadHighlighter();
      return;
    }
    code.classList.add("hljs");
    if (!lang || !hljs.getLanguage(lang) || text.length > HIGHLIGHT_MAX_CHARS) {
      code.textContent = text;
      return;
    }
    const key = `${lang}\0${text}`;
    let html = highlighted.get(key);
    if (html === undefined) {
      // highlight.js escapes the text it is given: its output holds only its own spans.
      html = hljs.highlight(text, { language: lang, ignoreIllegals: true }).value;
      if (highlighted.size > 500) highlighted.clear();
      highlighted.set(key, html);
    }
    code.innerHTML = html;
  }

  // Model output (its text or its reasoning) as sanitised HTML, or as plain text without marked.
  function renderInto(body, raw) {
    const html = renderMarkdown(raw);
    if (html === null) body.textContent = raw;
    else body.innerHTML = html;
    decorate(body);
  }

  const COPY_ICON =
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="currentColor"' +
    ' stroke-width="2" class="size-3.5" aria-hidden="true"><rect x="9" y="9" width="11" height="11"' +
    ' rx="2"/><path d="M5 15V5a2 2 0 012-2h10"/></svg>';

  // Highlighting and a header (language, copy button) for each code block of a message body.
  function decorate(body) {
    for (const block of body.querySelectorAll(".highlight")) {
      const code = block.querySelector("pre > code");
      if (!code || block.querySelector(":scope > [data-code-header]")) continue;
      highlightCode(code, block.dataset.lang);
      const header = document.createElement("div");
      header.dataset.codeHeader = "";
      header.className =
        "not-prose flex items-center justify-between gap-2 px-3 py-1 text-xs text-base-content/60";
      const label = document.createElement("span");
      label.className = "font-mono";
      label.textContent = block.dataset.lang || "";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "btn btn-ghost btn-xs";
      button.dataset.copy = "code";
      button.setAttribute("aria-label", gettext("Copy code"));
      button.innerHTML = `${COPY_ICON}<span data-copy-label>${escapeHTML(gettext("Copy"))}</span>`;
      header.append(label, button);
      block.prepend(header);
    }
  }

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // No Clipboard API (a page served over plain HTTP from another host): the old way.
      const area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.cssText = "position:fixed;opacity:0;pointer-events:none";
      document.body.append(area);
      area.select();
      const done = document.execCommand("copy");
      area.remove();
      return done;
    }
  }

  function parseHTML(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  // Our fragments never start a document: a page that does is someone else's (a log-in form, an
  // error page, a proxy's).
  const isDocument = (text) => /^\s*(<!doctype|<html)/i.test(text || "");
  const samePath = (a, b) =>
    new URL(a, window.location.href).pathname === new URL(b, window.location.href).pathname;

  // The log-in page a redirect led to, made to come back to this page instead of the request.
  function signInUrl(responseUrl) {
    const url = new URL(responseUrl, window.location.href);
    url.searchParams.set("next", window.location.pathname + window.location.search);
    return url.pathname + url.search;
  }

  // A request that was redirected elsewhere (to a log-in page) rather than answered.
  const requestMoved = (xhr, detail) => {
    const path = detail?.requestConfig?.path || detail?.pathInfo?.requestPath;
    return !!path && !samePath(xhr.responseURL, path);
  };

  class Chat {
    constructor(root, { focus = root.dataset.mode === "page" } = {}) {
      this.root = root;
      this.app = root.dataset.chatApp;
      this.mode = root.dataset.mode;
      this.conversationId = root.dataset.conversationId || null;
      this.scroller = root.querySelector("[data-scroller]");
      this.list = root.querySelector("[data-messages]");
      // message id -> { raw, end, thinking, thought }: text and reasoning streamed so far
      this.buffers = new Map();
      this.dirty = new Set();
      this.frame = 0;
      this.source = null;
      this.retries = 0;
      this.retryTimer = 0;
      this.closed = false;
      this.navigating = false;

      for (const el of this.messages()) {
        this.adoptBuffer(el);
        el.querySelectorAll("[data-body], [data-thinking-body]").forEach(decorate);
      }
      this.restoreDraft();
      this.addConnectionStatus();
      this.addAnnouncer();
      this.bind();
      this.updateState();
      this.scrollToBottom();
      this.connect();
      // An embedded chat does not take the focus from its host page until it is used.
      if (focus) this.focusComposer();
    }

    // -- live stream -----------------------------------------------------------------------

    cursor() {
      let after = null;
      let partial = null;
      for (const el of this.messages()) {
        const id = messageId(el);
        if (after === null || id > after) after = id;
        if (el.dataset.complete === "false") partial = el;
      }
      const query = new URLSearchParams();
      if (after) query.set("after", after);
      // On a reconnect the page may hold rows deleted meanwhile: the server lists what is left
      // from the oldest row shown on (a `present` event).
      const first = this.messages()[0];
      if (this.connectedOnce && first) query.set("since", messageId(first));
      if (partial) {
        const id = messageId(partial);
        const buffer = this.buffers.get(id);
        query.set("partial", id);
        query.set("end", String(buffer ? buffer.end : Number(partial.dataset.end || 0)));
        const thought = buffer ? buffer.thought : Number(partial.dataset.thinkingEnd || 0);
        if (thought) query.set("thinking", String(thought));
      }
      return query;
    }

    connect() {
      if (this.closed || !this.root.dataset.streamUrl) return;
      const url = new URL(this.root.dataset.streamUrl, window.location.href);
      for (const [key, value] of this.cursor()) url.searchParams.set(key, value);
      const source = new EventSource(url);
      this.source = source;
      this.connectedOnce = true;
      source.addEventListener("open", () => {
        this.retries = 0;
        this.root.dataset.connected = "true";
        if (this.notice()?.dataset.kind === "signed-out") this.clearNotice();
      });
      source.addEventListener("message", (event) => this.guard(() => this.onMessage(event.data)));
      source.addEventListener("delta", (event) =>
        this.guard(() => this.onDelta(JSON.parse(event.data))),
      );
      source.addEventListener("thinking", (event) =>
        this.guard(() => this.onThinking(JSON.parse(event.data))),
      );
      source.addEventListener("removed", (event) =>
        this.guard(() => this.onRemoved(JSON.parse(event.data))),
      );
      source.addEventListener("present", (event) =>
        this.guard(() => this.onPresent(JSON.parse(event.data))),
      );
      source.addEventListener("conversation", (event) =>
        this.guard(() => this.onConversation(JSON.parse(event.data))),
      );
      source.addEventListener("error", () => {
        // Reconnect ourselves rather than let EventSource retry with its original URL: the
        // cursor in the new URL is what this page shows now.
        this.root.dataset.connected = "false";
        this.reconnect();
        // A stream that keeps failing may be a session that ended: EventSource cannot tell a
        // log-in page from a dead server, a plain request can.
        if (this.retries === 2) this.checkSession();
      });
    }

    async checkSession() {
      const probe = this.root.dataset.conversationsUrl;
      if (!probe) return;
      try {
        const response = await fetch(probe, { credentials: "same-origin" });
        if (response.redirected && !samePath(response.url, probe)) this.signedOut(response.url);
      } catch {
        // Offline: the indicator already says so.
      }
    }

    reconnect(delay) {
      if (this.source) this.source.close();
      this.source = null;
      if (this.closed) return;
      clearTimeout(this.retryTimer);
      const wait = delay ?? Math.min(MAX_RETRY_MS, 500 * 2 ** this.retries++);
      this.retryTimer = setTimeout(() => this.connect(), wait);
    }

    close() {
      this.closed = true;
      clearTimeout(this.retryTimer);
      if (this.source) this.source.close();
      this.source = null;
    }

    guard(handler) {
      if (!this.root.isConnected) {
        this.close();
        return;
      }
      handler();
    }

    onMessage(html) {
      const el = parseHTML(html);
      if (el && el.id.startsWith("message-")) this.upsert(el);
    }

    onDelta({ id, offset, text }) {
      const el = this.find(id);
      const buffer = this.streamBuffer(el, id);
      if (!buffer) return;
      const added = this.append(buffer, "raw", "end", offset, text);
      if (!added) return;
      el.dataset.end = String(buffer.end);
      // The answer has started: its thinking is done, and folds away (unless the reader chose).
      if (buffer.end === added) this.thinkingDone(el);
      this.scheduleRender(id);
    }

    onThinking({ id, offset, text }) {
      const el = this.find(id);
      const buffer = this.streamBuffer(el, id);
      if (!buffer) return;
      if (!this.append(buffer, "thinking", "thought", offset, text)) return;
      el.dataset.thinkingEnd = String(buffer.thought);
      buffer.thinkingDirty = true;
      const section = el.querySelector("[data-thinking]");
      if (section) section.hidden = false;
      this.scheduleRender(id);
    }

    streamBuffer(el, id) {
      if (!el || el.dataset.complete === "true") return null;
      return this.buffers.get(id) || this.adoptBuffer(el);
    }

    // Appends what `text` at `offset` adds beyond the buffer's `end` (offsets count code
    // points); returns how many characters it added.
    append(buffer, raw, end, offset, text) {
      if (offset > buffer[end]) {
        // A gap: reconnecting sends our cursor and the server fills it in.
        this.reconnect(0);
        return 0;
      }
      const chars = Array.from(text);
      const skip = buffer[end] - offset;
      if (skip >= chars.length) return 0;
      buffer[raw] += chars.slice(skip).join("");
      buffer[end] += chars.length - skip;
      return chars.length - skip;
    }

    thinkingDone(el) {
      const section = el.querySelector("[data-thinking]");
      if (!section) return;
      const summary = section.querySelector(":scope > summary");
      const label = section.querySelector("[data-thinking-label]");
      if (label && summary?.dataset.doneLabel) label.textContent = summary.dataset.doneLabel;
      section.querySelector("[data-thinking-spinner]")?.remove();
      if (!section.dataset.toggled) section.open = false;
    }

    onRemoved({ id }) {
      const el = this.find(id);
      // The message under the focus goes (a regenerate): the focus goes to the composer, not
      // to the top of the document.
      const hadFocus = !!el?.contains(document.activeElement);
      if (el) el.remove();
      if (hadFocus) this.focusComposer();
      this.buffers.delete(id);
      this.updateState();
    }

    onPresent({ since, ids, older = [] }) {
      const kept = new Set(ids);
      const shown = new Set();
      for (const el of this.messages()) {
        const id = messageId(el);
        shown.add(id);
        if (id >= since && !kept.has(id)) this.onRemoved({ id });
      }
      // A message older than the newest shown that the page lacks joined the branch shown while
      // the stream was down (a switch of version in another tab): the catch-up sends only newer
      // ones, so the conversation is loaded again.
      const newest = Array.from(shown).sort().pop();
      if (newest && [...older, ...ids].some((id) => id < newest && !shown.has(id))) {
        this.navigate(this.conversationId);
      }
    }

    onConversation({ id, event }) {
      if (event === "deleted" && id === this.conversationId) {
        this.navigate(null);
        return;
      }
      this.refreshSidebar();
    }

    // -- messages --------------------------------------------------------------------------

    messages() {
      return this.list ? this.list.querySelectorAll(":scope > [data-message]") : [];
    }

    find(id) {
      return this.list ? this.list.querySelector(`:scope > #message-${CSS.escape(id)}`) : null;
    }

    adoptBuffer(el) {
      if (el.dataset.source !== "agent" || el.dataset.complete !== "false") return null;
      const raw = readRaw(el) ?? "";
      const thinking = readRaw(el, '[data-thinking] > script[type="application/json"]') ?? "";
      const buffer = { raw, end: codePoints(raw), thinking, thought: codePoints(thinking) };
      this.buffers.set(messageId(el), buffer);
      return buffer;
    }

    upsert(el) {
      if (!this.list) return;
      const stick = this.atBottom();
      const id = messageId(el);
      const held = this.buffers.get(id);
      const existing = this.find(id);
      const wasRunning = existing?.dataset.complete === "false";
      // A keyboard user on a button of the message being replaced keeps their place.
      const focused = existing?.contains(document.activeElement) ? document.activeElement : null;
      // A Thinking section the reader opened or closed stays so, also when the answer ends.
      const section = existing?.querySelector("[data-thinking]");
      const fresh = el.querySelector("[data-thinking]");
      if (section?.dataset.toggled && fresh) {
        fresh.dataset.toggled = "true";
        fresh.open = section.open;
      }
      if (existing) {
        existing.replaceWith(el);
        if (focused) this.refocus(el, focused);
      } else {
        // Ids are UUID v7: their string order is the order the messages were created in.
        const next = Array.from(this.messages()).find((other) => messageId(other) > id);
        this.list.insertBefore(el, next || null);
      }
      this.buffers.delete(id);
      if (this.switchingTo?.id === id) this.focusSwitcher(el);
      if ((held || wasRunning) && el.dataset.complete === "true") this.announceAnswer(el);
      if (el.dataset.awaitingApproval === "true" && existing?.dataset.awaitingApproval !== "true") {
        this.announce(gettext("The assistant is waiting for your approval."));
      }
      if (held && el.dataset.complete === "true") {
        this.root.dispatchEvent(
          new CustomEvent(`${this.app}:answered`, {
            bubbles: true,
            detail: {
              conversationId: this.conversationId,
              messageId: id,
              streamedText: held.raw,
              streamedThinking: held.thinking,
              stopped: el.dataset.stopped === "true",
            },
          }),
        );
      }
      if (el.dataset.complete === "false") {
        const adopted = this.adoptBuffer(el);
        // Deltas got ahead of the row the server read: keep the longer text (and reasoning).
        if (held && adopted && held.end > adopted.end) {
          Object.assign(adopted, { raw: held.raw, end: held.end });
          el.dataset.end = String(held.end);
          this.thinkingDone(el);
          this.renderBuffer(id);
        }
        if (held && adopted && held.thought > adopted.thought) {
          Object.assign(adopted, { thinking: held.thinking, thought: held.thought });
          el.dataset.thinkingEnd = String(held.thought);
          adopted.thinkingDirty = true;
          const shown = el.querySelector("[data-thinking]");
          if (shown) shown.hidden = false;
          this.renderBuffer(id);
        }
      }
      el.querySelectorAll("[data-body], [data-thinking-body]").forEach(decorate);
      if (window.htmx) window.htmx.process(el);
      this.root.querySelector("[data-empty]")?.remove();
      this.updateState();
      if (stick) this.scrollToBottom();
    }

    scheduleRender(id) {
      this.dirty.add(id);
      if (this.frame) return;
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        const stick = this.atBottom();
        for (const dirty of this.dirty) this.renderBuffer(dirty);
        this.dirty.clear();
        if (stick) this.scrollToBottom();
      });
    }

    renderBuffer(id) {
      const buffer = this.buffers.get(id);
      const el = this.find(id);
      if (!buffer || !el) return;
      const body = el.querySelector("[data-body]");
      if (body) renderInto(body, buffer.raw);
      const thoughts = el.querySelector("[data-thinking-body]");
      if (thoughts && buffer.thinkingDirty) renderInto(thoughts, buffer.thinking);
      buffer.thinkingDirty = false;
    }

    updateState() {
      const all = this.messages();
      const last = all[all.length - 1];
      const waiting = !!last && last.dataset.source === "user";
      // An answer waiting for a tool call's approval runs nowhere: Send, not Stop (a new
      // message supersedes the call), and nothing is "responding".
      const awaiting = !!last && last.dataset.awaitingApproval === "true";
      const streaming = !!last && last.dataset.complete === "false" && !awaiting;
      const pending = this.root.querySelector("[data-pending]");
      if (pending) pending.hidden = !waiting;
      const stop = this.root.querySelector("[data-stop]");
      // Stop vanishes when the answer ends: whoever pressed it with the keyboard goes on typing.
      const stopFocused = !!stop && stop === document.activeElement;
      if (stop) stop.hidden = !(waiting || streaming);
      // Stop takes Send's place while an answer runs (templates put both in one grid cell).
      const send = this.root.querySelector("[data-composer] [data-send]");
      if (send) send.hidden = !!stop && (waiting || streaming);
      if (stopFocused && stop.hidden) this.focusComposer();
      const responding = waiting || streaming;
      if (responding && this.root.dataset.responding === "false") {
        this.announce(gettext("The assistant is responding…"));
      }
      this.root.dataset.responding = String(responding);
    }

    // -- announcements: one polite live region per chat, never a token at a time --------------

    addAnnouncer() {
      if (this.root.querySelector("[data-announcer]")) return;
      const region = document.createElement("div");
      region.dataset.announcer = "";
      region.className = "sr-only";
      region.setAttribute("role", "status");
      region.setAttribute("aria-live", "polite");
      region.setAttribute("aria-atomic", "true");
      this.root.append(region);
    }

    announce(text) {
      const region = this.root.querySelector("[data-announcer]");
      if (!region) return;
      // Emptied first: the same words twice in a row are read twice.
      region.textContent = "";
      clearTimeout(this.announceTimer);
      this.announceTimer = setTimeout(() => (region.textContent = text), 50);
    }

    // A finished answer is read once, whole: the streaming text itself is never live.
    announceAnswer(el) {
      if (el.dataset.source !== "agent") return;
      const error = el.querySelector("[data-answer-error] span")?.textContent?.trim();
      if (error) {
        this.announce(error);
        return;
      }
      const text = (el.querySelector("[data-body]")?.innerText || "").trim();
      const limit = 2000;
      const said = text.length > limit ? `${text.slice(0, limit)}…` : text;
      if (el.dataset.stopped === "true") {
        this.announce(`${gettext("Answer stopped.")} ${said}`.trim());
      } else {
        this.announce(`${gettext("Answer:")} ${said}`);
      }
    }

    // The control of the new element that stands where `old` stood (same id, or same role).
    refocus(el, old) {
      let match = old.id ? el.querySelector(`#${CSS.escape(old.id)}`) : null;
      if (!match && old.matches("[data-thinking] > summary")) {
        match = el.querySelector("[data-thinking] > summary");
      }
      if (!match) {
        for (const name of ["data-copy", "data-regenerate", "data-retry", "data-rate", "data-branch-switch", "data-edit"]) {
          if (old.hasAttribute(name)) {
            match = el.querySelector(`[${name}="${CSS.escape(old.getAttribute(name))}"]`);
            break;
          }
        }
      }
      if (match) match.focus({ preventScroll: true });
      else this.focusComposer();
    }

    // -- scrolling -------------------------------------------------------------------------

    atBottom() {
      const s = this.scroller;
      return !s || s.scrollHeight - s.scrollTop - s.clientHeight < STICK_PX;
    }

    scrollToBottom() {
      if (this.scroller) this.scroller.scrollTop = this.scroller.scrollHeight;
    }

    // -- navigation, sidebar ---------------------------------------------------------------

    async navigate(conversationId) {
      // A delete, say, asks twice (its response and the live event): go once.
      if (this.navigating) return;
      this.navigating = true;
      try {
        await this.go(conversationId);
      } finally {
        if (this.mode !== "page") this.navigating = false;
      }
    }

    async go(conversationId) {
      const page = this.root.dataset.pageUrl;
      if (this.mode === "page" && page !== undefined) {
        // The page is swapped in place and the address changed with pushState: no reload, so a
        // new chat's first answer streams as soon as in an open one.
        const target = conversationId ? `${page}${conversationId}/` : page;
        if (!(await this.swapPage(target))) window.location.assign(target);
        return;
      }
      const url = new URL(this.root.dataset.panelUrl, window.location.href);
      if (conversationId) url.searchParams.set("conversation", conversationId);
      if (this.root.dataset.hideSidebar === "1") url.searchParams.set("hide_sidebar", "1");
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.redirected && !samePath(response.url, url)) {
        this.signedOut(response.url);
        return;
      }
      if (!response.ok) return;
      const root = parseHTML(await response.text());
      if (!root?.matches("[data-chat-root]")) return;
      this.close();
      root.className = this.root.className;
      this.root.replaceWith(root);
      if (window.htmx) window.htmx.process(root);
      start(root, { focus: true });
      root.dispatchEvent(
        new CustomEvent(`${this.app}:navigate`, {
          bubbles: true,
          detail: { conversationId: conversationId || null },
        }),
      );
    }

    async swapPage(target) {
      let response;
      try {
        response = await fetch(target, { credentials: "same-origin" });
      } catch {
        return false;
      }
      const url = new URL(target, window.location.href);
      if (response.redirected && !samePath(response.url, url)) {
        this.signedOut(response.url);
        return true;
      }
      if (!response.ok) return false;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.querySelector(`[data-chat-root][data-chat-app="${CSS.escape(this.app)}"]`);
      if (!fresh) return false;
      const root = document.importNode(fresh, true);
      this.close();
      this.root.replaceWith(root);
      if (window.location.pathname !== url.pathname) {
        window.history.pushState({ djangoAiChat: true }, "", url.pathname);
      }
      document.title = doc.title;
      if (window.htmx) window.htmx.process(root);
      start(root, { focus: true });
      return true;
    }

    async refreshSidebar() {
      const list = this.root.querySelector("[data-conversations]");
      if (!list || !this.root.dataset.conversationsUrl) return;
      const url = new URL(this.root.dataset.conversationsUrl, window.location.href);
      if (this.conversationId) url.searchParams.set("active", this.conversationId);
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.redirected && !samePath(response.url, url)) {
        this.signedOut(response.url);
        return;
      }
      const html = await response.text();
      if (!response.ok || isDocument(html)) return;
      list.innerHTML = html;
      const active = list.querySelector(`[data-conversation-item="${this.conversationId}"]`);
      const title = this.root.querySelector("[data-conversation-title]");
      if (active && title && title.textContent !== active.dataset.title) {
        title.textContent = active.dataset.title;
        if (this.mode === "page") {
          document.title = interpolate(gettext("%(title)s · Chat"), { title: active.dataset.title });
        }
      }
    }

    // -- wiring ----------------------------------------------------------------------------

    bind() {
      const root = this.root;
      root.addEventListener("click", (event) => this.onClick(event));
      root.addEventListener("keydown", (event) => this.onKeydown(event));
      root.addEventListener("submit", (event) => {
        // A dialog whose answer comes back inside it (the share link) stays open.
        if (event.target.closest("[data-dialog-keep-open]")) return;
        event.target.closest("dialog")?.close();
      });
      root.addEventListener("input", (event) => {
        if (event.target.matches?.("[data-composer-input]")) this.grow(event.target);
      });
      root.addEventListener("change", (event) => {
        if (event.target.matches("[data-drawer-toggle]")) this.drawerChanged(event.target);
        if (event.target.matches("[data-attach-input]")) this.listFiles(event.target);
      });
      root.addEventListener("paste", (event) => {
        const files = event.clipboardData?.files;
        const form = event.target.closest?.("[data-composer]");
        if (!form || !files?.length || !form.querySelector("[data-attach-input]")) return;
        event.preventDefault();
        this.addFiles(form, Array.from(files));
      });
      const carriesFiles = (event) => Array.from(event.dataTransfer?.types || []).includes("Files");
      root.addEventListener("dragover", (event) => {
        if (!carriesFiles(event) || !this.root.querySelector("[data-attach-input]")) return;
        event.preventDefault();
        this.dropping(true);
      });
      root.addEventListener("dragleave", (event) => {
        if (!this.root.contains(event.relatedTarget)) this.dropping(false);
      });
      root.addEventListener("drop", (event) => {
        const form = this.root.querySelector("[data-composer]");
        if (!carriesFiles(event) || !form?.querySelector("[data-attach-input]")) return;
        event.preventDefault();
        this.dropping(false);
        this.addFiles(form, Array.from(event.dataTransfer.files));
      });
      root.addEventListener("htmx:beforeSwap", (event) => this.beforeSwap(event));
      root.addEventListener("htmx:afterSwap", (event) => this.afterSwap(event.target));
      // On a refused or failed request htmx swaps nothing: the text stays, and this says why.
      root.addEventListener("htmx:responseError", (event) => this.requestFailed(event.detail));
      root.addEventListener("htmx:sendError", (event) => this.requestFailed(event.detail));
      root.addEventListener(`${this.app}:refresh`, () => this.refreshSidebar());
      root.addEventListener(`${this.app}:deleted`, (event) => {
        if (event.detail?.conversationId === this.conversationId) this.navigate(null);
        else this.refreshSidebar();
      });
      root.addEventListener(`${this.app}:reload`, () => {
        if (this.mode === "page") window.location.reload();
        else this.navigate(this.conversationId);
      });
    }

    onClick(event) {
      const target = event.target;
      // The reader's own choice (a click, or Enter / Space on the summary) is kept from then on.
      const summary = target.closest("[data-thinking] > summary");
      if (summary && this.root.contains(summary)) summary.parentElement.dataset.toggled = "true";
      const copy = target.closest("[data-copy]");
      if (copy && this.root.contains(copy)) {
        this.copy(copy);
        return;
      }
      const link = target.closest("[data-navigate]");
      if (link && this.root.contains(link)) {
        const modified = event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0;
        const href = link.getAttribute("href");
        if (modified && href && href !== "#") return;
        event.preventDefault();
        this.setDrawer(false);
        this.navigate(link.dataset.navigate || null);
        return;
      }
      const switcher = target.closest("[data-branch-switch]");
      if (switcher?.dataset.branchTarget && this.root.contains(switcher)) {
        // The version switched to arrives over the stream: the focus waits for it there.
        this.switchingTo = { id: switcher.dataset.branchTarget, side: switcher.dataset.branchSwitch };
        return;
      }
      const edit = target.closest("[data-edit]");
      if (edit && this.root.contains(edit)) {
        this.openEdit(edit.closest("[data-message]"));
        return;
      }
      const cancel = target.closest("[data-edit-cancel]");
      if (cancel && this.root.contains(cancel)) {
        this.closeEdit(cancel.closest("[data-message]"));
        return;
      }
      const attach = target.closest("[data-attach]");
      if (attach && this.root.contains(attach)) {
        attach.closest("[data-composer]")?.querySelector("[data-attach-input]")?.click();
        return;
      }
      const remove = target.closest("[data-attachment-remove]");
      if (remove && this.root.contains(remove)) {
        const form = remove.closest("[data-composer]");
        const input = form?.querySelector("[data-attach-input]");
        if (input) {
          const index = Number(remove.dataset.attachmentRemove);
          this.setFiles(form, Array.from(input.files).filter((_, i) => i !== index));
          form.querySelector("[data-composer-input]")?.focus();
        }
        return;
      }
      const opener = target.closest("[data-dialog-open]");
      if (opener) {
        document.getElementById(opener.dataset.dialogOpen)?.showModal();
        return;
      }
      const closer = target.closest("[data-dialog-close]");
      if (closer) {
        closer.closest("dialog")?.close();
        return;
      }
      if (target.closest("[data-drawer-open]")) this.setDrawer(true);
      else if (target.closest("[data-drawer-close]")) this.setDrawer(false);
    }

    onKeydown(event) {
      if (event.key === "Escape" && this.root.querySelector("[data-drawer-toggle]:checked")) {
        this.setDrawer(false);
        return;
      }
      const input = event.target;
      if (input.matches?.("[data-edit-input]")) {
        this.onEditKeydown(event, input);
        return;
      }
      if (!input.matches?.("[data-composer-input]")) return;
      if (event.key === "Escape" && this.root.dataset.responding === "true") {
        // Esc in the text box stops the answer, without leaving the box.
        const stop = this.root.querySelector("[data-stop]");
        if (stop && !stop.hidden) {
          event.preventDefault();
          stop.click();
        }
        return;
      }
      if (sendsOnEnter(event)) {
        event.preventDefault();
        input.form.requestSubmit();
      }
    }

    // -- editing a message: a new version, asked in place ---------------------------------

    // The edit form stands in place of the message's text and actions while it is open.
    showEditForm(el, open) {
      const form = el?.querySelector("[data-edit-form]");
      if (!form) return null;
      for (const part of el.querySelectorAll(":scope > [data-body], :scope > [data-message-actions]")) {
        part.hidden = open;
      }
      form.hidden = !open;
      return form;
    }

    openEdit(el) {
      const form = this.showEditForm(el, true);
      if (!form) return;
      const input = form.querySelector("[data-edit-input]");
      this.grow(input);
      input.focus({ preventScroll: true });
      input.setSelectionRange(input.value.length, input.value.length);
    }

    closeEdit(el) {
      const form = this.showEditForm(el, false);
      if (!form) return;
      const input = form.querySelector("[data-edit-input]");
      input.value = input.defaultValue; // what the message says
      this.editError(form, "");
      el.querySelector("[data-edit]")?.focus({ preventScroll: true });
    }

    onEditKeydown(event, input) {
      if (event.key === "Escape") {
        event.preventDefault();
        this.closeEdit(input.closest("[data-message]"));
      } else if (sendsOnEnter(event)) {
        event.preventDefault();
        input.form.requestSubmit();
      }
    }

    // The server's reason under the edited text (empty: none); the text stays as typed.
    editError(form, text) {
      const error = form.querySelector("[data-edit-error]");
      const input = form.querySelector("[data-edit-input]");
      if (!error || !input) return;
      error.textContent = text;
      error.hidden = !text;
      input.classList.toggle("textarea-error", !!text);
      if (text) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
      if (text) input.focus({ preventScroll: true });
    }

    focusSwitcher(el) {
      const { side } = this.switchingTo;
      this.switchingTo = null;
      const buttons = Array.from(el.querySelectorAll("[data-branch-switch]"));
      const same = buttons.find((button) => button.dataset.branchSwitch === side && !button.disabled);
      (same || buttons.find((button) => !button.disabled))?.focus({ preventScroll: true });
    }

    setDrawer(open) {
      const toggle = this.root.querySelector("[data-drawer-toggle]");
      if (!toggle || toggle.checked === open) return;
      toggle.checked = open;
      this.drawerChanged(toggle);
    }

    drawerChanged(toggle) {
      const opener = this.root.querySelector("[data-drawer-open]");
      opener?.setAttribute("aria-expanded", String(toggle.checked));
      // Over the page (small screens), the open drawer is modal: the page behind it is inert, so
      // Tab stays in the drawer and a screen reader does not wander behind it.
      const overlay = !!opener && opener.offsetParent !== null;
      const content = this.root.querySelector(".drawer-content");
      if (content) content.inert = toggle.checked && overlay;
      if (toggle.checked) {
        focusWhenShown(this.root.querySelector("[data-sidebar] a, [data-sidebar] button"));
      } else {
        opener?.focus();
      }
    }

    // -- files: chosen, dropped or pasted into the composer's file input -------------------

    addFiles(form, files) {
      const input = form.querySelector("[data-attach-input]");
      if (!input || !files.length) return;
      this.setFiles(form, [...Array.from(input.files), ...files]);
    }

    setFiles(form, files) {
      const input = form.querySelector("[data-attach-input]");
      if (!input) return;
      const transfer = new DataTransfer();
      for (const file of files) transfer.items.add(file);
      input.files = transfer.files;
      this.listFiles(input);
    }

    listFiles(input) {
      const list = input.closest("[data-composer]")?.querySelector("[data-attachment-list]");
      if (!list) return;
      for (const url of list.objectUrls || []) URL.revokeObjectURL(url);
      list.objectUrls = [];
      list.replaceChildren();
      Array.from(input.files).forEach((file, index) => {
        const item = document.createElement("li");
        item.className =
          "flex items-center gap-2 rounded-box border border-base-300 bg-base-100 py-1 pl-1 pr-1 text-sm";
        item.dataset.pendingAttachment = file.name;
        if (/^image\/(png|jpeg|webp|gif)$/.test(file.type)) {
          const url = URL.createObjectURL(file);
          list.objectUrls.push(url);
          const img = document.createElement("img");
          img.src = url;
          img.alt = "";
          img.className = "size-10 rounded-field object-cover";
          item.append(img);
        } else {
          const icon = document.createElement("span");
          icon.className = "badge badge-ghost badge-sm font-mono uppercase";
          icon.textContent = (file.name.split(".").pop() || "file").slice(0, 4);
          item.append(icon);
        }
        const label = document.createElement("span");
        label.className = "flex min-w-0 flex-col leading-tight";
        const name = document.createElement("span");
        name.className = "max-w-40 truncate font-medium";
        name.textContent = file.name;
        const size = document.createElement("span");
        size.className = "text-xs text-base-content/60";
        size.textContent = formatSize(file.size);
        label.append(name, size);
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "btn btn-ghost btn-xs btn-circle";
        remove.dataset.attachmentRemove = String(index);
        remove.setAttribute("aria-label", interpolate(gettext("Remove %s"), [file.name]));
        remove.innerHTML =
          '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="currentColor" ' +
          'stroke-width="2" class="size-3.5" aria-hidden="true"><path d="M6 6l12 12M18 6L6 18"/></svg>';
        item.append(label, remove);
        list.append(item);
      });
    }

    dropping(on) {
      const box = this.root.querySelector("[data-composer-box]");
      box?.classList.toggle("ring-2", on);
      box?.classList.toggle("ring-primary", on);
    }

    // Only the chat's own fragments are swapped in; anything else leaves the page as it is.
    beforeSwap(event) {
      const composer = event.detail.elt?.closest?.("[data-composer]");
      const chosen = composer?.querySelector("[data-attach-input]")?.files;
      // Kept for the composer that replaces this one, should the server refuse the message.
      this.pendingFiles = chosen?.length ? Array.from(chosen) : null;
      const { xhr, requestConfig } = event.detail;
      // A tool call decided already (another tab) or expired: its card says so, in place.
      if (xhr?.status === 409 && event.detail.elt?.closest?.("[data-approval-form]")) {
        event.detail.shouldSwap = true;
        event.detail.isError = false;
        return;
      }
      if (!xhr || !event.detail.shouldSwap) return;
      const redirected = xhr.responseURL && requestConfig?.path &&
        !samePath(xhr.responseURL, requestConfig.path);
      if (!redirected && !isDocument(xhr.responseText)) return;
      event.detail.shouldSwap = false;
      this.requestFailed(event.detail, { foreign: true });
    }

    async requestFailed(detail, { foreign = false } = {}) {
      const xhr = detail?.xhr;
      const status = foreign ? 0 : xhr?.status || 0;
      const edit = detail?.elt?.closest?.("[data-edit-form]");
      if (edit && (status === 422 || status === 429) && xhr?.responseText && !isDocument(xhr.responseText)) {
        this.editError(edit, xhr.responseText);
        return;
      }
      const form = detail?.elt?.closest?.("[data-composer]");
      // Django refuses a request body over DATA_UPLOAD_MAX_MEMORY_SIZE with a 400, before the view.
      if (form && (status === 400 || status === 413 || (status === 429 && xhr?.responseText))) {
        this.composerError(form, status, xhr);
        return;
      }
      this.saveDraft();
      if (xhr?.responseURL && xhr.responseURL !== "" && requestMoved(xhr, detail)) {
        this.signedOut(xhr.responseURL);
        return;
      }
      // A 403 is CSRF's when the session changed in another tab; any failure may be a session
      // that ended without a redirect to show for it: ask the server once.
      const probe = this.root.dataset.conversationsUrl;
      if (probe && (status === 403 || status === 401 || foreign)) {
        try {
          const response = await fetch(probe, { credentials: "same-origin" });
          if (response.redirected && !samePath(response.url, probe)) {
            this.signedOut(response.url);
            return;
          }
        } catch {
          // Offline: said below.
        }
      }
      if (status === 403) {
        this.showNotice(
          "stale",
          gettext("This page is out of date (you may have signed in again in another tab). %(link)s: your text is kept."),
          { href: window.location.href, text: gettext("Reload the page") },
        );
      } else if (foreign) {
        this.showNotice(
          "foreign",
          gettext("The server sent an unexpected page (a proxy or network problem?). Your text is kept: try again."),
        );
      } else {
        const why = status
          ? interpolate(gettext("error %(status)s"), { status })
          : gettext("no connection");
        this.showNotice(
          "failed",
          interpolate(
            gettext("The request could not be completed (%(why)s). Your text is kept: try again."),
            { why },
          ),
        );
      }
    }

    signedOut(responseUrl) {
      this.saveDraft();
      this.showNotice(
        "signed-out",
        gettext("You were signed out. %(link)s to continue: your text is kept."),
        { href: signInUrl(responseUrl), text: gettext("Sign in again") },
      );
    }

    notice() {
      return this.root.querySelector("[data-chat-notice]");
    }

    // `text` is one translated sentence; `link` goes where it says %(link)s.
    showNotice(kind, text, link) {
      let notice = this.notice();
      if (!notice) {
        notice = document.createElement("div");
        notice.dataset.chatNotice = "";
        notice.setAttribute("role", "alert");
        notice.className =
          "alert alert-warning alert-soft mx-auto my-2 w-[calc(100%-1.5rem)] max-w-3xl text-sm";
        const composer = this.root.querySelector("[data-composer]");
        if (composer) composer.before(notice);
        else this.root.prepend(notice);
      }
      notice.dataset.kind = kind;
      notice.hidden = false;
      const [before, after] = link ? text.split("%(link)s") : [text];
      notice.replaceChildren(document.createTextNode(before));
      if (link) {
        const a = document.createElement("a");
        a.className = "link font-semibold";
        a.href = link.href;
        a.textContent = link.text;
        notice.append(a, document.createTextNode(after || ""));
      }
    }

    clearNotice() {
      const notice = this.notice();
      if (notice) notice.hidden = true;
    }

    async copy(button) {
      let text = "";
      if (button.dataset.copy === "code") {
        text = button.closest(".highlight")?.querySelector("pre > code")?.textContent ?? "";
      } else if (button.dataset.copy === "value") {
        text = document.getElementById(button.dataset.copyFrom)?.value ?? "";
      } else {
        const message = button.closest("[data-message]");
        const body = message?.querySelector("[data-body]");
        // An answer is copied as the reader sees it, without the code blocks' headers.
        const clone = body?.cloneNode(true);
        clone?.querySelectorAll("[data-code-header]").forEach((el) => el.remove());
        if (clone) {
          clone.style.cssText = "position:fixed;left:-9999px;white-space:pre-wrap";
          document.body.append(clone);
          text = clone.innerText.trim();
          clone.remove();
        }
      }
      const done = await copyText(text);
      const label = button.querySelector("[data-copy-label]");
      if (!label) return;
      label.textContent = done ? gettext("Copied") : gettext("Copy failed");
      this.announce(label.textContent);
      clearTimeout(button.copyTimer);
      button.copyTimer = setTimeout(() => (label.textContent = gettext("Copy")), 1500);
    }

    // -- connection --------------------------------------------------------------------------

    addConnectionStatus() {
      if (this.root.querySelector("[data-connection-status]")) return;
      const status = document.createElement("div");
      status.dataset.connectionStatus = "";
      status.setAttribute("role", "status");
      status.className =
        "badge badge-warning badge-soft mx-auto my-1 gap-2 shadow-sm";
      status.innerHTML =
        '<span class="loading loading-spinner loading-xs" aria-hidden="true"></span>' +
        `<span>${escapeHTML(gettext("Connection lost. Reconnecting…"))}</span>`;
      const composer = this.root.querySelector("[data-composer]");
      if (composer) composer.before(status);
    }

    // -- drafts: the typed text survives a failed send, a reload and a sign-in ----------------

    draftKey() {
      return `django-ai-chat:draft:${this.app}:${this.conversationId || "new"}`;
    }

    saveDraft() {
      const input = this.root.querySelector("[data-composer-input]");
      try {
        if (input?.value) window.sessionStorage.setItem(this.draftKey(), input.value);
      } catch {
        // Storage refused (private mode, quota): the text is still in the box.
      }
    }

    restoreDraft() {
      const input = this.root.querySelector("[data-composer-input]");
      try {
        const draft = window.sessionStorage.getItem(this.draftKey());
        if (draft && input && !input.value) input.value = draft;
      } catch {
        // As above.
      }
    }

    dropDraft() {
      try {
        window.sessionStorage.removeItem(this.draftKey());
      } catch {
        // As above.
      }
    }

    afterSwap(target) {
      if (target.matches?.("[data-share]")) {
        // The share dialog's body came back: the keyboard goes on from the link (or Create).
        const url = target.querySelector("[data-share-url]");
        (url || target.querySelector("[data-share-create]"))?.focus();
        url?.select();
        return;
      }
      if (!target.matches?.("[data-composer]")) return;
      this.clearNotice();
      if (target.querySelector("template[data-sent]")) this.dropDraft();
      const sent = target.querySelector("template[data-sent]");
      const files = this.pendingFiles;
      this.pendingFiles = null;
      if (!sent && files?.length) this.setFiles(target, files);
      if (sent) {
        const el = sent.content.firstElementChild;
        sent.remove();
        if (el) this.upsert(el.cloneNode(true));
        this.scrollToBottom();
      }
      const next = target.dataset.navigateTo;
      if (next) {
        this.navigate(next);
        return;
      }
      this.focusComposer();
    }

    composerError(form, status, xhr) {
      const input = form.querySelector("[data-composer-input]");
      if (!input) return;
      let error = form.querySelector("[data-composer-error]");
      if (!error) {
        error = document.createElement("p");
        error.id = `${input.id}-error`;
        error.className = "text-sm text-error";
        error.setAttribute("role", "alert");
        error.dataset.composerError = "";
        input.after(error);
        const described = `${input.getAttribute("aria-describedby") || ""} ${error.id}`;
        input.setAttribute("aria-describedby", described.trim());
      }
      if (status === 400 || status === 413) {
        error.textContent = gettext("This message is too large to send.");
      } else if (status === 429 && xhr?.responseText) {
        // Over a limit (AI_CHAT_MESSAGE_LIMIT, ...): the server says which, and when to retry.
        error.textContent = xhr.responseText;
      } else {
        error.textContent = interpolate(
          gettext("The message could not be sent (error %(status)s). Please try again."),
          { status },
        );
      }
      input.classList.add("textarea-error");
      input.setAttribute("aria-invalid", "true");
      input.focus({ preventScroll: true });
    }

    // The text box grows with its text up to its max-height, then scrolls.
    grow(input) {
      input.style.height = "auto";
      input.style.height = `${input.scrollHeight + 2}px`;
    }

    focusComposer() {
      const input = this.root.querySelector("[data-composer-input]");
      if (!input) return;
      input.focus({ preventScroll: true });
      input.setSelectionRange(input.value.length, input.value.length);
    }
  }

  // daisyUI's drawer becomes visible after a short delay (a transition): an element still
  // hidden refuses the focus, so it is asked again on the next frames, for half a second at most.
  function focusWhenShown(el, until = performance.now() + 500) {
    if (!el) return;
    el.focus({ preventScroll: true });
    if (document.activeElement !== el && performance.now() < until) {
      requestAnimationFrame(() => focusWhenShown(el, until));
    }
  }

  function start(root, options) {
    if (chats.has(root)) return chats.get(root);
    const chat = new Chat(root, options);
    chats.set(root, chat);
    return chat;
  }

  function startAll(scope) {
    if (scope.matches?.("[data-chat-root]")) start(scope);
    for (const root of scope.querySelectorAll?.("[data-chat-root]") ?? []) start(root);
  }

  // Leaving the page closes the streams (the back/forward cache needs that); coming back from
  // that cache reconnects them with their cursors.
  window.addEventListener("pagehide", () => {
    for (const root of document.querySelectorAll("[data-chat-root]")) chats.get(root)?.close();
  });
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    for (const root of document.querySelectorAll("[data-chat-root]")) {
      const chat = chats.get(root);
      if (chat) {
        chat.closed = false;
        chat.navigating = false;
        chat.connect();
      }
    }
  });

  // Back and forward after an in-place navigation: show what the address says.
  window.addEventListener("popstate", () => {
    if (document.querySelector('[data-chat-root][data-mode="page"]')) window.location.reload();
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => startAll(document));
  } else {
    startAll(document);
  }
  // Roots that a host page swaps in with htmx start too.
  document.addEventListener("htmx:load", (event) => startAll(event.target));
})();
