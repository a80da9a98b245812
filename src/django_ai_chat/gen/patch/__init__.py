"""Conservative, idempotent patchers of user files.

Each patcher is a pure function from source text to source text that adds something only when
it is absent (the `_new` suffix), and returns `None` when it does not fully recognise the file:
the caller then leaves the file alone and tells the user what to add by hand.
"""
