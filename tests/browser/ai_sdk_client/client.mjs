// Drives our AI SDK endpoints with the AI SDK's own client code, as a React app's useChat does:
// DefaultChatTransport sends the turn (and reconnects for a resume), readUIMessageStream builds
// the assistant UIMessage from the chunks. One scenario per run, given as JSON in argv[2]:
//   {"base": "http://…/chat/api/chat/", "cookie": "…", "csrf": "…", "chatId": "<uuid>",
//    "scenario": "send" | "resume" | "stop" | "reconnect" | "approve", "text": "…",
//    "afterChars": 40, "on": "text" | "reasoning",  (what `afterChars` counts: text or reasoning)
//    "approved": true, "reason": "…"}  (the "approve" scenario's answer to the approval request)
// Prints one JSON object: the final message(s), the chunk types seen, and any error.
import {
  DefaultChatTransport,
  lastAssistantMessageIsCompleteWithApprovalResponses,
  readUIMessageStream,
} from "ai";

const args = JSON.parse(process.argv[2]);
const headers = { Cookie: args.cookie, "X-CSRFToken": args.csrf };
const transport = new DefaultChatTransport({ api: args.base, headers });

function textOf(message) {
  return (message?.parts ?? [])
    .filter((part) => part.type === "text")
    .map((part) => part.text)
    .join("");
}

function reasoningOf(message) {
  return (message?.parts ?? [])
    .filter((part) => part.type === "reasoning")
    .map((part) => part.text)
    .join("");
}

const counted = args.on === "reasoning" ? reasoningOf : textOf;

function userMessage(text) {
  return { id: `client-${Date.now()}`, role: "user", parts: [{ type: "text", text }] };
}

// Reads a chunk stream into the final UIMessage; `until(message)` may stop early (returns it),
// `each(message)` is awaited after every update, `continuing` is the message the stream goes on.
async function read(stream, { until, each, continuing } = {}) {
  const types = [];
  const errors = [];
  const [forMessages, forTypes] = stream.tee();
  const typesDone = (async () => {
    const reader = forTypes.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        types.push(value.type);
      }
    } catch (error) {
      // The other branch was cancelled (a simulated reload).
    }
  })();
  let last;
  for await (const message of readUIMessageStream({
    stream: forMessages,
    ...(continuing ? { message: continuing } : {}),
    onError: (error) => errors.push(String(error?.message ?? error)),
  })) {
    last = message;
    if (each) await each(message);
    if (until && until(message)) {
      return { message: last, types, errors, stoppedEarly: true };
    }
  }
  await typesDone;
  return { message: last, types, errors, stoppedEarly: false };
}

async function main() {
  const out = {};
  try {
    if (args.scenario === "reconnect") {
      const stream = await transport.reconnectToStream({ chatId: args.chatId });
      out.resumed = stream === null ? null : await read(stream);
    } else {
      const controller = new AbortController();
      const stream = await transport.sendMessages({
        chatId: args.chatId,
        messages: [userMessage(args.text)],
        trigger: "submit-message",
        messageId: undefined,
        abortSignal: controller.signal,
      });
      if (args.scenario === "send") {
        out.first = await read(stream);
      } else if (args.scenario === "approve") {
        // useChat with sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses.
        const user = userMessage(args.text);
        out.first = await read(stream);
        const asked = out.first.message.parts.find((part) => part.state === "approval-requested");
        const answered = {
          ...out.first.message,
          parts: out.first.message.parts.map((part) =>
            part === asked
              ? {
                  ...part,
                  state: "approval-responded",
                  approval: { ...part.approval, approved: args.approved, reason: args.reason },
                }
              : part,
          ),
        };
        const messages = [user, answered];
        out.sendsAutomatically = lastAssistantMessageIsCompleteWithApprovalResponses({ messages });
        const more = await transport.sendMessages({
          chatId: args.chatId,
          messages,
          trigger: "submit-message",
          messageId: undefined,
          abortSignal: controller.signal,
        });
        out.second = await read(more, { continuing: answered });
      } else if (args.scenario === "resume") {
        // A reload mid-answer: the page's fetch is gone; the new page reconnects.
        out.first = await read(stream, {
          until: (message) => counted(message).length >= args.afterChars,
        });
        controller.abort();
        const again = await transport.reconnectToStream({ chatId: args.chatId });
        out.resumed = again === null ? null : await read(again);
      } else if (args.scenario === "stop") {
        // The stop button: the server stops the job; the open stream then finishes.
        let asked = false;
        out.first = await read(stream, {
          each: async (message) => {
            if (asked || textOf(message).length < args.afterChars) return;
            asked = true;
            const stopped = await fetch(`${args.base}${args.chatId}/stop/`, {
              method: "POST",
              headers,
            });
            out.stopStatus = stopped.status;
            out.stopBody = await stopped.json();
          },
        });
      }
    }
  } catch (error) {
    out.error = String(error?.message ?? error);
  }
  for (const key of ["first", "resumed", "second"]) {
    if (out[key]) {
      out[key].text = textOf(out[key].message);
      out[key].reasoning = reasoningOf(out[key].message);
    }
  }
  process.stdout.write(JSON.stringify(out));
}

await main();
