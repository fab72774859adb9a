"""The center's web pages, served by the app itself: server-rendered HTML (Jinja2) with a little JavaScript of
our own for the live board. Nothing is fetched from a CDN; the center's network may be closed."""
