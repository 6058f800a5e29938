"""The web dashboard served by `llm-incident serve`: an overview of every route, a page per route,
incidents with their postmortems — server-rendered HTML with SVG charts, nothing from a CDN."""
