"""``registryctl``: argument parsing and the commands. The entry point alone reads the environment."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TextIO

from registryctl import render
from registryctl.client import RegistryClient
from registryctl.errors import RegistryctlError
from registryctl.watching import watch

DEFAULT_URL = "http://localhost:3011"
EXIT_ERROR = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad arguments: exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _common() -> _Parser:
    """Options accepted before or after the command (SUPPRESS: a later default never hides an earlier value)."""
    p = _Parser(add_help=False)
    s = argparse.SUPPRESS
    p.add_argument("--url", default=s, help=f"registry URL, or a comma list tried in order "
                                           f"(env SERVICE_REGISTRY_URL, default {DEFAULT_URL})")
    p.add_argument("--token", default=s, help="bearer token: write, read or admin "
                                              "(env SERVICE_REGISTRY_AUTH_TOKEN)")
    p.add_argument("--json", action="store_true", default=s, help="print JSON for scripts")
    p.add_argument("--timeout", type=_seconds, default=s, help="seconds to wait for the registry (default 10)")
    return p


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"expected seconds (a number above 0), got {raw!r}")
    return value


def _metadata(raw: str) -> tuple[str, str]:
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {raw!r}")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = _Parser(prog="registryctl", parents=[common],
                     description="Look at and change the service registry over its REST API.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help_text, description=help_text)

    command("ls", "list services with their instance counts by status")
    show = command("show", "list the live instances of one service")
    show.add_argument("name")
    show.add_argument("--status", help="comma list of statuses, e.g. UP,STARTING")
    show.add_argument("--version", help="only this version")
    get = command("get", "show one instance")
    get.add_argument("id")
    reg = command("register", "register an instance (prints its lease token: keep it)")
    reg.add_argument("--name", required=True)
    reg.add_argument("--port", required=True, type=int)
    reg.add_argument("--host", help="default: the address the registry sees this request from")
    reg.add_argument("--id", help="client-chosen id: registering it again updates it instead of duplicating")
    reg.add_argument("--version")
    reg.add_argument("--description")
    reg.add_argument("--status", choices=render.STATUSES)
    reg.add_argument("--scheme", choices=("http", "https"))
    reg.add_argument("--health-endpoint")
    reg.add_argument("--metadata", "-m", action="append", type=_metadata, default=[], metavar="KEY=VALUE")
    reg.add_argument("--lease-token", help="16-256 chars; needed again to renew, re-register or deregister")
    hb = command("heartbeat", "renew an instance's lease, optionally changing its status")
    hb.add_argument("id")
    hb.add_argument("--status", choices=render.STATUSES)
    hb.add_argument("--lease-token", help="the instance's lease token (not needed with the admin token)")
    dereg = command("deregister", "remove an instance")
    dereg.add_argument("id")
    dereg.add_argument("--lease-token", help="the instance's lease token (not needed with the admin token)")
    w = command("watch", "print a service's instances, then every change (Ctrl-C to stop)")
    w.add_argument("name")
    w.add_argument("--status", help="comma list of statuses to follow")
    w.add_argument("--wait", type=_seconds, default=60.0, help="seconds each blocking query may wait (default 60)")
    return parser


def _path(*parts: str) -> str:
    return "/" + "/".join(urllib.parse.quote(p, safe="") for p in parts)


def _lease(args: argparse.Namespace) -> dict[str, str]:
    return {"X-Lease-Token": args.lease_token} if args.lease_token else {}


class Commands:
    def __init__(self, client: RegistryClient, args: argparse.Namespace, out: TextIO, err: TextIO,
                 now_ms: Callable[[], int]) -> None:
        self.client, self.args, self.out, self.err, self.now_ms = client, args, out, err, now_ms
        self.json = bool(getattr(args, "json", False))

    def emit(self, payload: Any, human: str) -> None:
        print(json.dumps(payload, indent=2) if self.json else human, file=self.out)

    def ls(self) -> None:
        services = self.client.request("GET", "/services").body["services"]
        self.emit({"services": services}, render.services_table(services) if services else "no services registered")

    def show(self) -> None:
        query = {k: v for k, v in (("status", self.args.status), ("version", self.args.version)) if v}
        body = self.client.request("GET", _path("services", self.args.name), query=query).body
        human = (render.instances_table(body["instances"], self.now_ms()) if body["instances"]
                 else f"no live instances of {self.args.name}")
        self.emit(body, human)

    def get(self) -> None:
        inst = self.client.request("GET", _path("instances", self.args.id)).body
        self.emit(inst, render.instance_details(inst, self.now_ms()))

    def register(self) -> None:
        a = self.args
        body: dict[str, Any] = {"name": a.name, "port": a.port}
        for key in ("host", "id", "version", "description", "status", "scheme", "health_endpoint", "lease_token"):
            if getattr(a, key) is not None:
                body[key] = getattr(a, key)
        if a.metadata:
            body["metadata"] = dict(a.metadata)
        answer = self.client.request("POST", "/instances", body=body, headers=_lease(a))
        inst = answer.body
        verb = "registered" if answer.status == 201 else "re-registered"
        self.emit(inst, f"{verb} {inst['id']}\n{render.instance_details(inst, self.now_ms())}")

    def heartbeat(self) -> None:
        body = {"status": self.args.status} if self.args.status else None
        inst = self.client.request("PUT", _path("instances", self.args.id, "heartbeat"), body=body,
                                   headers=_lease(self.args)).body
        self.emit(inst, f"renewed {inst['id']}: {inst['status']}, expires in {render.expiry(inst, self.now_ms())}")

    def deregister(self) -> None:
        self.client.request("DELETE", _path("instances", self.args.id), headers=_lease(self.args))
        self.emit({"deregistered": self.args.id}, f"deregistered {self.args.id}")

    def watch(self) -> None:
        seen: dict[str, dict[str, Any]] | None = None

        def on_change(index: int, instances: list[dict[str, Any]]) -> None:
            nonlocal seen
            now = {i["id"]: i for i in instances}
            if self.json:
                print(json.dumps({"name": self.args.name, "index": index, "instances": instances}), file=self.out)
            elif seen is None:
                print(render.instances_table(instances, self.now_ms()) if instances
                      else f"no live instances of {self.args.name}", file=self.out)
            else:
                stamp = time.strftime("%H:%M:%S")
                for line in render.changes(seen, now):
                    print(f"{stamp} {line}", file=self.out)
            self.out.flush()
            seen = now

        def on_retry(exc: RegistryctlError, delay: float) -> None:
            print(f"registryctl: warning: {exc}; retrying in {delay:g}s", file=self.err, flush=True)

        watch(self.client, self.args.name, on_change, wait_s=self.args.wait, statuses=self.args.status,
              on_retry=on_retry)


def main(argv: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    env = os.environ if env is None else env
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
        url = getattr(args, "url", None) or env.get("SERVICE_REGISTRY_URL") or DEFAULT_URL
        urls = tuple(u.strip() for u in url.split(",") if u.strip())
        if not urls or any(urllib.parse.urlsplit(u).scheme not in ("http", "https") for u in urls):
            raise UsageError(f"--url must be http:// or https:// URLs, got {url!r}")
        client = RegistryClient(urls, token=getattr(args, "token", None) or env.get("SERVICE_REGISTRY_AUTH_TOKEN"),
                                timeout_s=getattr(args, "timeout", 10.0))
        commands = Commands(client, args, out, err, lambda: round(time.time() * 1000))
        getattr(commands, args.command)()
    except UsageError as exc:
        print(f"registryctl: error: {exc}", file=err)
        return EXIT_USAGE
    except RegistryctlError as exc:
        print(f"registryctl: error: {exc}", file=err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `registryctl watch X | head`
        return 0
    return 0
