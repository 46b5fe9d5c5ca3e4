"""`augury serve`: the OpenAI-compatible server with moderation, limits and a request log.

    augury serve runs/quickstart                                  # loopback, no key needed
    augury serve keys add alice --keys serve/keys.json            # make a key (printed once)
    augury serve runs/quickstart --keys serve/keys.json --host 0.0.0.0 --port 8000
    augury serve --upstream http://127.0.0.1:8001/v1 --keys serve/keys.json   # gateway in front of e.g. vLLM
    augury serve --config serve.yaml --limits.requests_per_minute 30

The chat page is at http://HOST:PORT/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from augury.errors import UsageError

KEYS_USAGE = "usage: augury serve keys {add,revoke,list} [NAME] --keys FILE"
KEYS_HELP = f"""{KEYS_USAGE}

Manage the API keys a server accepts. Only each key's SHA-256 is stored in FILE (JSON).

  add NAME     make a key for NAME and print it once (letters, digits, '-' or '_')
  revoke NAME  remove NAME's key
  list         the names that have a key, with when each was made
"""


def _keys_command(argv: list[str]) -> int:
    try:
        return _keys(argv)
    except UsageError as err:  # the error line names the subcommand, as `augury ladder plan` does
        raise UsageError(str(err), prog=err.prog or "augury serve keys") from None


def _keys(argv: list[str]) -> int:
    from augury.serve.keys import KeyStore

    if any(a in ("-h", "--help") for a in argv):
        print(KEYS_HELP, end="")
        return 0
    if "--keys" not in argv or argv.index("--keys") + 1 >= len(argv):
        raise UsageError(f"--keys FILE is required ({KEYS_USAGE})")
    i = argv.index("--keys")
    path, rest = argv[i + 1], argv[:i] + argv[i + 2:]
    store = KeyStore.load(path)
    if rest[:1] == ["add"] and len(rest) == 2:
        key = store.add(rest[1])
        print(key)
        print(f"key for {rest[1]!r} stored (hashed) in {path}; it is not shown again", file=sys.stderr)
    elif rest[:1] == ["revoke"] and len(rest) == 2:
        store.revoke(rest[1])
    elif rest == ["list"]:
        if not Path(path).exists():  # a mistyped path must not read as a keys file with no keys in it
            raise UsageError(f"keys file {path} does not exist (`augury serve keys add NAME --keys {path}` makes it)")
        for r in store.records:
            print(f"{r.name}\t{r.created}")
    else:
        raise UsageError(KEYS_USAGE)
    return 0


def build_app(cfg):
    from augury.serve.app import create_app
    from augury.serve.backends import LocalBackend
    from augury.serve.gateway import UpstreamBackend
    from augury.serve.keys import KeyStore
    from augury.serve.requestlog import RequestLog

    try:
        cfg.validate()
    except ValueError as err:
        raise UsageError(str(err)) from None
    keys = KeyStore.load(cfg.keys) if cfg.keys else None
    if keys is not None and not keys.records:
        raise UsageError(f"{cfg.keys} holds no keys: add one with `augury serve keys add NAME --keys {cfg.keys}`")
    RequestLog.check(cfg.log)  # before a model load that can take minutes
    if cfg.upstream:
        backend = UpstreamBackend(cfg.upstream, cfg.upstream_key_env or None, cfg.request_timeout_s)
    else:
        if cfg.threads:
            import torch

            torch.set_num_threads(cfg.threads)
        backend = LocalBackend.load(cfg.model, cfg.device, cfg.max_batch)
    return create_app(cfg, backend, keys, RequestLog(cfg.log))


def parse_args(argv: list[str]):
    """The ServeConfig of a command line: `--config FILE.yaml`, the fields as flags, the model as a bare argument."""
    from augury.command import config_cli
    from augury.serve.config import ServeConfig

    return config_cli(ServeConfig, argv, prog="augury serve", description=__doc__.split("\n")[0], positional="model")


def main(argv: list[str]) -> int:
    if argv[:1] == ["keys"]:
        return _keys_command(argv[1:])
    cfg = parse_args(argv)
    app = build_app(cfg)
    import uvicorn

    print(f"augury serve: {cfg.model or cfg.upstream} on http://{cfg.host}:{cfg.port}/ (log: {cfg.log})",
          file=sys.stderr)
    from augury.serve.protocol import header_timeout_protocol

    # proxy_headers off: uvicorn's own would trust X-Forwarded-For from 127.0.0.1 (or $FORWARDED_ALLOW_IPS); the
    # app trusts --trusted_proxies only
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", timeout_keep_alive=5,
                http=header_timeout_protocol(cfg.header_timeout_s), proxy_headers=False)
    return 0
