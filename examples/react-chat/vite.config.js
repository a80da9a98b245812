// The Django project stays the only backend: the dev server (and `vite preview`) proxy its
// chat API, log-in pages and static files, so the browser sees one origin and the session
// cookie and CSRF token work as on Django's own pages.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const django = process.env.DJANGO_URL ?? "http://127.0.0.1:8000";
const proxy = Object.fromEntries(
  ["/chat/api", "/accounts", "/static"].map((path) => [path, { target: django }]),
);

export default defineConfig({
  plugins: [react()],
  server: { proxy },
  preview: { proxy },
});
