"""mitmproxy addons of the sidecar, one small class per concern (DESIGN §8).

Order matters and is fixed by `proxy.runner`: Enforce decides, Journaling makes the request and
response records durable (and may turn any call into a 503), Metrics counts what was answered.
Everything an addon decides goes into `flow.metadata` under the `reestr.` prefix.
"""
