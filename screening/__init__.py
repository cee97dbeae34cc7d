"""Screens an upload before Pillow decodes it: the format allowlist, the bounded structure walk,
and the one place Pillow's and libmagic's errors become imgpress errors. Both sides run it."""
