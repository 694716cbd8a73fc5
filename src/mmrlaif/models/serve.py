"""``python -m mmrlaif.models.serve --model DIR``: serve a saved VLM over the OpenAI-compatible
chat-completions API (:class:`mmrlaif.models.server.VLMChatServer`) until SIGTERM or SIGINT.

The project's stand-in for ``vllm serve`` where vLLM cannot run (a CPU, the toy world): the
in-task policy server of the sampling stage starts either with the same command template.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Sequence

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Load the model, serve it, stop cleanly on SIGTERM / SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m mmrlaif.models.serve", description=__doc__)
    parser.add_argument("--model", required=True, help="a folder written by save_pretrained")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", help="served model name (default: --model)")
    parser.add_argument("--dtype", default="float32")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    # lazy: torch and transformers load when the server starts, not when its CLI parses arguments
    from mmrlaif.models.load import load_vlm
    from mmrlaif.models.server import VLMChatServer

    model, processor = load_vlm(args.model, args.dtype)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with VLMChatServer(model, processor, args.name or args.model, args.host, args.port) as srv:
        logger.info("serving %s at %s", args.model, srv.url)
        stop.wait()
    logger.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
