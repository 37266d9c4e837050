"""The SOAP message layer: one safe parse per message, message profiles, MTOM.

`read_message` (proxy.soap.message) is the entry point; `envelope` checks the envelope,
`mtom` takes `multipart/related` apart, `profiles` finds the operation's element and the
message identifiers (plain SOAP, SMEV 3). No mitmproxy import: the addons pass bytes and headers.
"""
