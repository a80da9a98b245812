// The Django project's AI SDK endpoints (`django-ai-chat gen --api ai-sdk`, on in `new`).
export const API = "/chat/api/";

export const csrf = () => document.cookie.match(/(?:^|; )csrftoken=([^;]*)/)?.[1] ?? "";

async function json(response) {
  if (response.status === 401) throw new SignedOut();
  if (!response.ok) throw new Error(`${response.status}: ${await response.text()}`);
  return response.json();
}

export class SignedOut extends Error {}

export const listChats = () => fetch(`${API}chats/`).then(json);

// null for a chat that does not exist yet (a new id): it is created by its first message.
export async function loadChat(id) {
  const response = await fetch(`${API}chat/${id}/`);
  return response.status === 404 ? null : json(response);
}

export const stopChat = (id) =>
  fetch(`${API}chat/${id}/stop/`, { method: "POST", headers: { "X-CSRFToken": csrf() } });

export const deleteChat = (id) =>
  fetch(`${API}chat/${id}/`, { method: "DELETE", headers: { "X-CSRFToken": csrf() } });
