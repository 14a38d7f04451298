"""`inversa app`: the web UI."""

from __future__ import annotations

from inversa.errors import UserError


def register(sub, common) -> None:
    ap = sub.add_parser("app", parents=[common], help="the web UI: upload a photo, mark the damage, restore, compare",
                        description="Start the Gradio web UI (needs `pip install 'inversa[app]'`). It binds 127.0.0.1 "
                        "(this machine only) unless --host says otherwise; restorations run one or two at a time, others queue.")
    ap.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; 0.0.0.0 = all)")
    ap.add_argument("--port", type=int, help="port (default: the first free one from 7860)")
    ap.add_argument("--share", action="store_true", help="also open a temporary public *.gradio.live link")
    ap.add_argument("--model", help="default prior: bundled name, diffusers folder or hub id (default: the bundled prior)")
    ap.set_defaults(func=run)


def run(args) -> int:
    from inversa._extras import require
    from inversa.pretrained.loading import locate

    if args.port is not None and not 1 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: accepted: 1..65535")
    locate(args.model)  # a missing folder or an unknown name: one line before the server starts
    require("gradio", "app", "the web UI (inversa app)")
    from inversa.app import launch

    launch(host=args.host, port=args.port, share=args.share, default_model=args.model)
    return 0
