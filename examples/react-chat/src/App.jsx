import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport } from "ai";
import { useCallback, useEffect, useMemo, useState } from "react";

import { API, SignedOut, csrf, deleteChat, listChats, loadChat, stopChat } from "./api.js";

// The chat shown is in the URL (`?chat=<id>`), so a reload comes back to it and resumes its
// answer if one is still being written.
function chatFromUrl() {
  return new URLSearchParams(location.search).get("chat");
}

function goTo(id) {
  history.pushState(null, "", id ? `?chat=${id}` : "/");
}

export function App() {
  const [chatId, setChatId] = useState(() => chatFromUrl() ?? crypto.randomUUID());
  const [chats, setChats] = useState([]);
  const [signedOut, setSignedOut] = useState(false);
  const [loaded, setLoaded] = useState(null); // {id, messages} of the chat shown

  const refresh = useCallback(
    () =>
      listChats()
        .then((data) => setChats(data.conversations))
        .catch((error) => (error instanceof SignedOut ? setSignedOut(true) : console.error(error))),
    [],
  );

  useEffect(() => {
    refresh();
    const onPop = () => setChatId(chatFromUrl() ?? crypto.randomUUID());
    addEventListener("popstate", onPop);
    return () => removeEventListener("popstate", onPop);
  }, [refresh]);

  useEffect(() => {
    let current = true;
    setLoaded(null);
    loadChat(chatId)
      .then((chat) => current && setLoaded({ id: chatId, messages: chat?.messages ?? [] }))
      .catch((error) => (error instanceof SignedOut ? setSignedOut(true) : console.error(error)));
    return () => {
      current = false;
    };
  }, [chatId]);

  if (signedOut) {
    return (
      <main className="signed-out">
        <p>
          <a href="/accounts/login/?next=/">Log in</a> to chat.
        </p>
      </main>
    );
  }
  const open = (id) => {
    goTo(id);
    setChatId(id);
  };
  return (
    <div className="layout">
      <aside>
        <button type="button" onClick={() => open(crypto.randomUUID())}>
          New chat
        </button>
        <nav aria-label="Conversations">
          {chats.map((chat) => (
            <a
              key={chat.id}
              href={`?chat=${chat.id}`}
              aria-current={chat.id === chatId ? "page" : undefined}
              onClick={(event) => {
                event.preventDefault();
                open(chat.id);
              }}
            >
              {chat.title || "New conversation"}
            </a>
          ))}
        </nav>
      </aside>
      {loaded?.id === chatId ? (
        <Chat
          key={chatId}
          id={chatId}
          initialMessages={loaded.messages}
          onFirstMessage={() => {
            goTo(chatId);
            refresh();
          }}
          onDelete={async () => {
            await deleteChat(chatId);
            await refresh();
            open(crypto.randomUUID());
          }}
        />
      ) : (
        <main className="chat" aria-busy="true" />
      )}
    </div>
  );
}

function Chat({ id, initialMessages, onFirstMessage, onDelete }) {
  const transport = useMemo(
    () =>
      new DefaultChatTransport({
        api: `${API}chat/`,
        headers: () => ({ "X-CSRFToken": csrf() }),
      }),
    [],
  );
  const { messages, sendMessage, status, stop, error } = useChat({
    id,
    messages: initialMessages,
    resume: initialMessages.length > 0, // GET …/<id>/stream: the running answer, if any
    transport,
  });
  const [text, setText] = useState("");
  const busy = status === "submitted" || status === "streaming";

  const send = (event) => {
    event.preventDefault();
    if (!text.trim() || busy) return;
    if (messages.length === 0) onFirstMessage();
    sendMessage({ text });
    setText("");
  };
  const stopAnswer = async () => {
    // The server stops the answer (its text is kept); the open stream then ends by itself
    // with `metadata.stopped`. Aborting the fetch alone would leave the answer running.
    const response = await stopChat(id).catch(() => null);
    if (!response?.ok) stop();
  };

  return (
    <main className="chat">
      <header>
        {messages.length > 0 && (
          <button type="button" onClick={onDelete}>
            Delete chat
          </button>
        )}
      </header>
      <ol className="messages" aria-label="Messages">
        {messages.map((message) => (
          <Message key={message.id} message={message} />
        ))}
      </ol>
      {error && <p role="alert">{error.message}</p>}
      <form onSubmit={send}>
        <label htmlFor="composer">Message</label>
        <textarea
          id="composer"
          value={text}
          onChange={(event) => setText(event.target.value)}
          onKeyDown={(event) => {
            if (event.key === "Enter" && !event.shiftKey) send(event);
          }}
        />
        {busy ? (
          <button type="button" onClick={stopAnswer}>
            Stop
          </button>
        ) : (
          <button type="submit">Send</button>
        )}
      </form>
    </main>
  );
}

function Message({ message }) {
  const meta = message.metadata ?? {};
  return (
    <li
      className={`message ${message.role}`}
      data-role={message.role}
      data-stopped={meta.stopped ? "true" : undefined}
    >
      {message.parts.map((part, index) => {
        if (part.type === "text") {
          return (
            <p key={index} className="text">
              {part.text}
            </p>
          );
        }
        if (part.type.startsWith("tool-")) {
          return (
            <details key={index} className="tool" data-state={part.state}>
              <summary>
                {part.type.slice(5)} ({part.state})
              </summary>
              <pre>{JSON.stringify(part.output ?? part.errorText ?? part.input, null, 2)}</pre>
            </details>
          );
        }
        return null;
      })}
      {meta.stopped && <small>Stopped</small>}
      {meta.error && <small role="status">{meta.error}</small>}
    </li>
  );
}
