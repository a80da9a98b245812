"""Developer tooling: what the demo, the test suite and the benchmarks run, never a deployed app.

* `devdb`: a throwaway PostgreSQL cluster from local binaries (`start(name)`).
* `demo_model`: the offline `"demo:"` model (`DemoModel`), registered into `django_ai_chat.llm`
  by the app config, so that `AI_CHAT_MODEL=demo:` works in any project.
"""
