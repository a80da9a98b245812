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
 * - `conversation` events refresh the sidebar; `removed` events drop a message.
 * When a streamed answer ends, `<app>:answered` is dispatched on the root (it bubbles) with
 * `detail: { conversationId, messageId, streamedText, stopped }`, `streamedText` being the text
 * this page assembled from the stream (the final HTML has replaced it by then).
 * It also wires the composer (Enter sends, Shift+Enter adds a line), the drawer, the dialogs,
 * auto-scroll (unless the reader scrolled up) and, in a component, navigation without leaving
 * the host page: `<app>:navigate` is dispatched with `detail.conversationId`.
 */
(() => {
  "use strict";

  // Two generated apps on one page both load this file: the first copy serves every chat root.
  if (window.djangoAiChat) return;
  window.djangoAiChat = true;

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
  const chats = new WeakMap();

  const codePoints = (text) => Array.from(text).length;
  const messageId = (el) => el.id.slice("message-".length);

  function readRaw(el) {
    const script = el.querySelector('script[type="application/json"]');
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
          image: ({ href, text }) =>
            `<a href="${escapeHTML(href)}" target="_blank" rel="noopener noreferrer nofollow">` +
            `${escapeHTML(text || href)}</a>`,
        },
      });
    }
    return window.DOMPurify.sanitize(markdown.parse(raw), SANITIZE);
  }

  function parseHTML(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  }

  class Chat {
    constructor(root, { focus = root.dataset.mode === "page" } = {}) {
      this.root = root;
      this.app = root.dataset.chatApp;
      this.mode = root.dataset.mode;
      this.conversationId = root.dataset.conversationId || null;
      this.scroller = root.querySelector("[data-scroller]");
      this.list = root.querySelector("[data-messages]");
      this.buffers = new Map(); // message id -> { raw, end }: text streamed so far
      this.dirty = new Set();
      this.frame = 0;
      this.source = null;
      this.retries = 0;
      this.retryTimer = 0;
      this.closed = false;
      this.navigating = false;

      for (const el of this.messages()) this.adoptBuffer(el);
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
      if (partial) {
        const id = messageId(partial);
        const buffer = this.buffers.get(id);
        query.set("partial", id);
        query.set("end", String(buffer ? buffer.end : Number(partial.dataset.end || 0)));
      }
      return query;
    }

    connect() {
      if (this.closed || !this.root.dataset.streamUrl) return;
      const url = new URL(this.root.dataset.streamUrl, window.location.href);
      for (const [key, value] of this.cursor()) url.searchParams.set(key, value);
      const source = new EventSource(url);
      this.source = source;
      source.addEventListener("open", () => {
        this.retries = 0;
        this.root.dataset.connected = "true";
      });
      source.addEventListener("message", (event) => this.guard(() => this.onMessage(event.data)));
      source.addEventListener("delta", (event) =>
        this.guard(() => this.onDelta(JSON.parse(event.data))),
      );
      source.addEventListener("removed", (event) =>
        this.guard(() => this.onRemoved(JSON.parse(event.data))),
      );
      source.addEventListener("conversation", (event) =>
        this.guard(() => this.onConversation(JSON.parse(event.data))),
      );
      source.addEventListener("error", () => {
        // Reconnect ourselves rather than let EventSource retry with its original URL: the
        // cursor in the new URL is what this page shows now.
        this.root.dataset.connected = "false";
        this.reconnect();
      });
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
      let buffer = this.buffers.get(id);
      const el = this.find(id);
      if (!el) return;
      if (!buffer) buffer = this.adoptBuffer(el);
      if (!buffer || el.dataset.complete === "true") return;
      if (offset > buffer.end) {
        // A gap: reconnecting sends our cursor and the server fills it in.
        this.reconnect(0);
        return;
      }
      const chars = Array.from(text);
      const skip = buffer.end - offset;
      if (skip >= chars.length) return;
      buffer.raw += chars.slice(skip).join("");
      buffer.end += chars.length - skip;
      el.dataset.end = String(buffer.end);
      this.scheduleRender(id);
    }

    onRemoved({ id }) {
      const el = this.find(id);
      if (el) el.remove();
      this.buffers.delete(id);
      this.updateState();
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
      const buffer = { raw, end: codePoints(raw) };
      this.buffers.set(messageId(el), buffer);
      return buffer;
    }

    upsert(el) {
      if (!this.list) return;
      const stick = this.atBottom();
      const id = messageId(el);
      const held = this.buffers.get(id);
      const existing = this.find(id);
      if (existing) {
        existing.replaceWith(el);
      } else {
        // Ids are UUID v7: their string order is the order the messages were created in.
        const next = Array.from(this.messages()).find((other) => messageId(other) > id);
        this.list.insertBefore(el, next || null);
      }
      this.buffers.delete(id);
      if (held && el.dataset.complete === "true") {
        this.root.dispatchEvent(
          new CustomEvent(`${this.app}:answered`, {
            bubbles: true,
            detail: {
              conversationId: this.conversationId,
              messageId: id,
              streamedText: held.raw,
              stopped: el.dataset.stopped === "true",
            },
          }),
        );
      }
      if (el.dataset.complete === "false") {
        const fresh = this.adoptBuffer(el);
        if (held && fresh && held.end > fresh.end) {
          // Deltas got ahead of the row the server read: keep the longer text.
          this.buffers.set(id, held);
          el.dataset.end = String(held.end);
          this.renderBuffer(id);
        }
      }
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
      const body = el?.querySelector("[data-body]");
      if (!buffer || !body) return;
      const html = renderMarkdown(buffer.raw);
      if (html === null) body.textContent = buffer.raw;
      else body.innerHTML = html;
    }

    updateState() {
      const all = this.messages();
      const last = all[all.length - 1];
      const waiting = !!last && last.dataset.source === "user";
      const streaming = !!last && last.dataset.complete === "false";
      const pending = this.root.querySelector("[data-pending]");
      if (pending) pending.hidden = !waiting;
      const stop = this.root.querySelector("[data-stop]");
      if (stop) stop.hidden = !(waiting || streaming);
      this.root.dataset.responding = String(waiting || streaming);
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
        window.location.assign(conversationId ? `${page}${conversationId}/` : page);
        return;
      }
      const url = new URL(this.root.dataset.panelUrl, window.location.href);
      if (conversationId) url.searchParams.set("conversation", conversationId);
      if (this.root.dataset.hideSidebar === "1") url.searchParams.set("hide_sidebar", "1");
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return;
      const root = parseHTML(await response.text());
      if (!root) return;
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

    async refreshSidebar() {
      const list = this.root.querySelector("[data-conversations]");
      if (!list || !this.root.dataset.conversationsUrl) return;
      const url = new URL(this.root.dataset.conversationsUrl, window.location.href);
      if (this.conversationId) url.searchParams.set("active", this.conversationId);
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return;
      list.innerHTML = await response.text();
      const active = list.querySelector(`[data-conversation-item="${this.conversationId}"]`);
      const title = this.root.querySelector("[data-conversation-title]");
      if (active && title && title.textContent !== active.dataset.title) {
        title.textContent = active.dataset.title;
        if (this.mode === "page") document.title = `${active.dataset.title} · Chat`;
      }
    }

    // -- wiring ----------------------------------------------------------------------------

    bind() {
      const root = this.root;
      root.addEventListener("click", (event) => this.onClick(event));
      root.addEventListener("keydown", (event) => this.onKeydown(event));
      root.addEventListener("submit", (event) => {
        event.target.closest("dialog")?.close();
      });
      root.addEventListener("change", (event) => {
        if (event.target.matches("[data-drawer-toggle]")) this.drawerChanged(event.target);
      });
      root.addEventListener("htmx:afterSwap", (event) => this.afterSwap(event.target));
      // On a refused or failed send htmx swaps nothing: the text stays, and this says why.
      const sendFailed = (event) => {
        const form = event.detail?.elt;
        const xhr = event.detail.xhr;
        if (form?.matches?.("[data-composer]")) this.composerError(form, xhr?.status, xhr);
      };
      root.addEventListener("htmx:responseError", sendFailed);
      root.addEventListener("htmx:sendError", sendFailed);
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
      if (!input.matches?.("[data-composer-input]")) return;
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey) {
        event.preventDefault();
        input.form.requestSubmit();
      }
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
      if (toggle.checked) this.root.querySelector("[data-sidebar] a, [data-sidebar] button")?.focus();
      else opener?.focus();
    }

    afterSwap(target) {
      if (!target.matches?.("[data-composer]")) return;
      const sent = target.querySelector("template[data-sent]");
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
      // Django refuses a request body over DATA_UPLOAD_MAX_MEMORY_SIZE with a 400, before the view.
      if (status === 400 || status === 413) {
        error.textContent = "This message is too large to send.";
      } else if (status === 429 && xhr?.responseText) {
        // Over a limit (AI_CHAT_MESSAGE_LIMIT, ...): the server says which, and when to retry.
        error.textContent = xhr.responseText;
      } else {
        const why = status ? `error ${status}` : "no connection";
        error.textContent = `The message could not be sent (${why}). Please try again.`;
      }
      input.classList.add("textarea-error");
      input.setAttribute("aria-invalid", "true");
      input.focus({ preventScroll: true });
    }

    focusComposer() {
      const input = this.root.querySelector("[data-composer-input]");
      if (!input) return;
      input.focus({ preventScroll: true });
      input.setSelectionRange(input.value.length, input.value.length);
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

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => startAll(document));
  } else {
    startAll(document);
  }
  // Roots that a host page swaps in with htmx start too.
  document.addEventListener("htmx:load", (event) => startAll(event.target));
})();
