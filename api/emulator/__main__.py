"""python -m api.emulator [--port 8470] [--results-port 8471] [--service-time 1.0] [--queue-time 0.3]"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .backend import Settings
from .server import EmulatorServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.emulator",
                                     description="Offline emulator of DashScope's Wan image APIs.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8470, help="API port (0: any free port)")
    parser.add_argument("--results-port", type=int, default=0,
                        help="port of the result host (0: any free port)")
    parser.add_argument("--queue-time", type=float, default=0.3, help="seconds a task stays PENDING")
    parser.add_argument("--service-time", type=float, default=1.0,
                        help="seconds a generation takes once RUNNING (the real service: 10 s to minutes)")
    parser.add_argument("--api-key", action="append", default=None,
                        help="accept only this key (repeatable); default: any non-empty key")
    args = parser.parse_args(argv)
    settings = Settings(queue_time=args.queue_time, service_time=args.service_time, api_keys=args.api_key)
    server = EmulatorServer(args.host, args.port, args.results_port, settings).start()
    print(f"Wan emulator listening: DASHSCOPE_HTTP_BASE_URL={server.base_url}", flush=True)
    print(f"results served from {server.backend.results_base}; control at "
          f"http://{server.host}:{server.port}/__emulator__/state", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
