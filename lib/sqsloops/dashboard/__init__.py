"""`sqsloops dashboard`: a web page over the stack's queues, loops and jobs, with safe actions on dead jobs.

A front end beside the CLI, over the same read models (sqsloops.ops: watch snapshots, QueueAdmin, JobsAdmin; the
job layer's store and catalog), built from one OpsRoot: the embedded AWS or a real account, same code. Starlette
serves it (uvicorn), Jinja2 renders it, htmx (vendored, static/) refreshes its panels without reloading the page.
Nothing in the runtime or in ops/ imports it (tests/unit/test_boundaries.py); it needs the `dashboard` extra.

- model.py     what each page shows, read through ops/ and jobs/; actions (redrive, discard) and their outcome
- history.py   the last hour of depth and loops per queue, sampled in memory (nothing stores history)
- chart.py     that history as a server-rendered SVG chart
- security.py  the startup token (URL, then a cookie), CSRF tokens for POSTs, loopback host checks
- app.py       the Starlette app: routes, templates, fragments for live refresh
- server.py    uvicorn on 127.0.0.1 in a thread, for the CLI, `local up --dashboard` and the browser tests
"""
