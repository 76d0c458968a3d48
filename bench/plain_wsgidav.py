"""Plain wsgidav, the baseline MedDAV is compared with.

wsgidav's FilesystemProvider on cheroot with Basic auth, in-memory locks and
dead properties, no request log: the stack MedDAV builds on, without
encryption, database or durability work.  Prints ``URL=...`` once serving.

    python bench/plain_wsgidav.py --root DIR --port 0 --user bench --password bench
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

from cheroot import wsgi
from wsgidav.wsgidav_app import WsgiDAVApp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="directory to serve")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="bench")
    parser.add_argument("--password", default="bench")
    args = parser.parse_args()

    config = {
        "provider_mapping": {"/": args.root},
        "http_authenticator": {
            "domain_controller": None,
            "accept_basic": True,
            "accept_digest": False,
            "default_to_digest": False,
        },
        "simple_dc": {"user_mapping": {"*": {args.user: {"password": args.password}}}},
        "lock_storage": True,
        "property_manager": True,
        "verbose": 1,
        "logging": {"enable": False},
    }
    logging.getLogger("wsgidav").setLevel(logging.ERROR)
    server = wsgi.Server(("127.0.0.1", args.port), WsgiDAVApp(config))
    server.prepare()
    print(f"URL=http://127.0.0.1:{server.bind_addr[1]}/", flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
