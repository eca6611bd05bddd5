"""Private reproductions of the Go functions whose exact behaviour Litestream's users see.

Litestream is written in Go: its configuration is expanded with ``os.Expand``, its
durations are read by ``time.ParseDuration`` and printed by ``Duration.String``, its
sizes are read by go-humanize, its ``dir:`` patterns are ``filepath.Match`` patterns
walked with ``filepath.Walk``, its paths cleaned and joined by ``path.Clean``/``Join``,
and its replica URLs are read by ``url.Parse``. Python's nearest equivalents
(``os.path.expandvars``, ``fnmatch``, ``urllib.parse``, ...) accept and reject different
inputs and word their errors differently, so each function is written out here by hand,
one Go concept per module. A failure is a :class:`~replica._go.errors.GoError` whose
text is the Go error's text; callers turn it into their own error.
"""
