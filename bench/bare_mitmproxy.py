"""Bare mitmproxy reverse proxy with a no-op addon: the baselines (b) and (b') of `bench/sidecar_bench.py`.

    .venv/bin/python bench/bare_mitmproxy.py --listen PORT --upstream http://127.0.0.1:N \
        --server-bundle demo/pki/ved3-server.pem --confdir DIR [--seconds 900] [--addons sidecar]

(b), the default: stock mitmproxy, a `DumpMaster` (mitmproxy's default addons) in reverse mode
without termlog and dumper. (b'), `--addons sidecar`: a `Master` with only the mitmproxy addons the
sidecar runs (`proxy.runner.mitmproxy_addons`), so (a)/(b') is what reestr's own work costs. Both:
the same server certificate, a client certificate requested, `connection_strategy=lazy`; the only
other addon has empty `requestheaders`, `request` and `response` hooks. Prints `listening` once
the proxy is up; exits on SIGTERM/SIGINT or after `--seconds` (a crashed benchmark never leaves it
running).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from mitmproxy import http, options
from mitmproxy.master import Master
from mitmproxy.tools.dump import DumpMaster

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from proxy.runner import mitmproxy_addons


class NoOp:
    """Hooks that do nothing, so mitmproxy's addon dispatch costs the same kind of calls."""

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        pass

    def request(self, flow: http.HTTPFlow) -> None:
        pass

    def response(self, flow: http.HTTPFlow) -> None:
        pass


class _Announce:
    def running(self) -> None:
        print("listening", flush=True)


async def main(args: argparse.Namespace) -> None:
    opts = options.Options(mode=[f"reverse:{args.upstream}"], listen_host="127.0.0.1",
                           listen_port=args.listen, confdir=args.confdir)
    if args.addons == "sidecar":
        master = Master(opts)
        master.addons.add(*mitmproxy_addons())
        stock: dict[str, bool] = {}
    else:
        master = DumpMaster(opts, with_termlog=False, with_dumper=False)
        stock = {"block_global": False}  # an option of a default addon the sidecar does not load
    master.addons.add(NoOp(), _Announce())
    master.options.update(certs=[f"*={args.server_bundle}"], request_client_cert=True,
                          connection_strategy="lazy", **stock)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, master.shutdown)
    loop.call_later(args.seconds, master.shutdown)
    await master.run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--server-bundle", required=True)
    parser.add_argument("--confdir", required=True)
    parser.add_argument("--seconds", type=float, default=900.0)
    parser.add_argument("--addons", choices=("stock", "sidecar"), default="stock")
    asyncio.run(main(parser.parse_args()))
