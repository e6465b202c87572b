"""Error tracking that speaks Sentry's protocol: the unchanged `sentry_sdk` and `@sentry/*` SDKs
point their DSN at Heron.

    envelope.py   body decoding (gzip/deflate/br) and the envelope wire format
    normalize.py  one canonical event shape (timestamps, levels, frames, request, user, ...)
    scrub.py      server-side removal of passwords, tokens, cookies, card numbers
    grouping.py   fingerprint -> issue id (custom fingerprint, exception + in-app frames, message)
    projects.py   projects, DSN keys, Sentry auth parsing, per-project rate limits
    issues.py     issue state and lifecycle in the control store (new, regression, ignore, resolve)
    rows.py       normalized events / transactions / sessions as Arrow rows for storage
    ingest.py     the request path: validate, rate-limit, acknowledge once queued durably
    queue.py      the envelope queue (a WAL of raw request bodies) between ack and processing
    process.py    behind the queue: batches of envelopes to rows and issue counts, idempotently
    digest.py     the CPU part of processing as a pure function (runs in worker processes)
    queries.py    issue lists, event lookups, facets, sparklines, transaction percentiles
    releases.py   releases and deploys (sentry-cli)
    crons.py      monitors from check-ins, schedules, missed/failed detection
    alerts.py     new issue, regression, spike and cron alerts in Alertmanager v2 shape
"""
