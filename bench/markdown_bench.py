"""How long `render_markdown` takes on a typical chat answer and on a long one.

.venv/bin/python bench/markdown_bench.py
"""

from __future__ import annotations

import statistics
import time

from django.conf import settings

settings.configure()

from django_ai_chat import markdown  # noqa: E402
from django_ai_chat.markdown import render_markdown  # noqa: E402

SECTION = """## Step {n}

Here is **what** to do, with a [link](https://example.com/{n}) and `inline code`:

| Option | Default | Meaning |
|:-------|--------:|---------|
| `timeout` | 30 | seconds before giving up |
| `retries` | 3 | ~~infinite~~ bounded |

- [x] install the package
- [ ] run the migration[^{n}]

```python
def handler(request, pk: int) -> HttpResponse:
    obj = get_object_or_404(Model, pk=pk)
    return render(request, "detail.html", {{"obj": obj}})
```

[^{n}]: `python manage.py migrate`.
"""


def measure(name: str, text: str, repeat: int) -> None:
    render_markdown(text)
    times = []
    for _ in range(repeat):
        markdown._render.cache_clear()  # measure rendering, not the cache
        start = time.perf_counter()
        render_markdown(text)
        times.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    render_markdown(text)
    cached = (time.perf_counter() - start) * 1000
    print(
        f"{name} ({len(text):,} chars): median {statistics.median(times):.2f} ms, "
        f"max {max(times):.2f} ms over {repeat} renders; cached {cached:.3f} ms"
    )


def main() -> None:
    measure("plain short answer", "Sure! The capital of France is **Paris**.", 2000)
    measure("typical answer, 1 code block", SECTION.format(n=1), 500)
    measure("long answer, 30 code blocks", "\n".join(SECTION.format(n=n) for n in range(30)), 50)


if __name__ == "__main__":
    main()
