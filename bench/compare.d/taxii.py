#!/usr/bin/env python3
"""The TAXII 1.1 client side of bench/compare, with the standard library only.

  taxii.py token BASE USER PASSWORD          OpenTAXII's JWT, from /management/auth
  taxii.py fill BASE AUTH FEED BLOCKS        BLOCKS ~2 KB blocks through /inbox
  taxii.py full-poll BASE AUTH FEED ...      one timed poll of the whole feed
  taxii.py inbox-body FEED                   an inbox message of one block
  taxii.py window-body LABELS FEED           a poll of the latest 10 blocks

AUTH is a whole Authorization header value ("Basic ..." or "Bearer ...").
"""
import argparse
import json
import pathlib
import re
import sys
import time
import urllib.request

NS = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1"
STIX = "urn:stix.mitre.org:xml:1.1.1"
HEADERS = {
    "Content-Type": "application/xml",
    "Accept": "application/xml",
    "X-TAXII-Content-Type": "urn:taxii.mitre.org:message:xml:1.1",
    "X-TAXII-Accept": "urn:taxii.mitre.org:message:xml:1.1",
    "X-TAXII-Services": "urn:taxii.mitre.org:services:1.1",
    "X-TAXII-Protocol": "urn:taxii.mitre.org:protocol:http:1.0",
}
# Blocks per inbox message while filling: few requests, each well under
# both servers' body limits.
FILL_BATCH = 100


def stix_package(n):
    """A STIX 1.1.1 package of about 2 KB, distinct for each n."""
    indicators = "".join(
        f'<stix:Indicator id="bench:Indicator-{n}-{i}" timestamp="2026-01-01T00:00:00Z">'
        f'<indicator:Title xmlns:indicator="http://stix.mitre.org/Indicator-2">Scanner {n}.{i}</indicator:Title>'
        '<indicator:Description xmlns:indicator="http://stix.mitre.org/Indicator-2">'
        "Probed the community for open remote shells; drop its traffic.</indicator:Description>"
        "</stix:Indicator>"
        for i in range(5)
    )
    return (
        f'<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" id="bench:Package-{n}" version="1.1.1">'
        f"<stix:STIX_Header><stix:Title>Benchmark package {n}</stix:Title></stix:STIX_Header>"
        f"<stix:Indicators>{indicators}</stix:Indicators></stix:STIX_Package>"
    )


def content_block(n):
    return (
        f'<t:Content_Block><t:Content_Binding binding_id="{STIX}"/>'
        f"<t:Content>{stix_package(n)}</t:Content></t:Content_Block>"
    )


def inbox_message(message_id, feed, blocks):
    return (
        f'<t:Inbox_Message xmlns:t="{NS}" message_id="{message_id}">'
        f"<t:Destination_Collection_Name>{feed}</t:Destination_Collection_Name>"
        f'{"".join(content_block(n) for n in blocks)}</t:Inbox_Message>'
    )


def poll_request(message_id, feed, begin=None, end=None):
    bounds = ""
    if begin:
        bounds += f"<t:Exclusive_Begin_Timestamp>{begin}</t:Exclusive_Begin_Timestamp>"
    if end:
        bounds += f"<t:Inclusive_End_Timestamp>{end}</t:Inclusive_End_Timestamp>"
    return (
        f'<t:Poll_Request xmlns:t="{NS}" message_id="{message_id}" collection_name="{feed}">{bounds}'
        "<t:Poll_Parameters><t:Response_Type>FULL</t:Response_Type></t:Poll_Parameters></t:Poll_Request>"
    )


def post(url, body, auth):
    headers = dict(HEADERS, Authorization=auth)
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.read()


def token(args):
    body = json.dumps({"username": args.user, "password": args.password}).encode()
    request = urllib.request.Request(
        args.base + "/management/auth", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        print(json.load(response)["token"])


def fill(args):
    for first in range(0, args.blocks, FILL_BATCH):
        blocks = range(first, min(first + FILL_BATCH, args.blocks))
        reply = post(args.base + "/inbox", inbox_message(f"fill-{first}", args.feed, blocks), args.auth)
        if b'status_type="SUCCESS"' not in reply:
            sys.exit(f"filling {args.base} failed: {reply[:300]!r}")


def full_poll(args):
    """Polls the whole feed: one Poll_Request, a Poll_Fulfillment for each
    further result part, then again from the latest label seen until a poll
    brings nothing, so that a server capping a result is still read to the
    end. Prints one JSON line; with --save, keeps every response in order
    and the feed's labels."""
    begin, blocks, requests, size, labels, replies = None, 0, 0, 0, [], []

    def exchange(body):
        nonlocal requests, size, blocks
        reply = post(args.base + args.path, body, args.auth)
        if b"Status_Message" in reply[:300]:
            sys.exit(f"poll of {args.base} failed: {reply[:300]!r}")
        requests += 1
        size += len(reply)
        count = reply.count(b"Content_Block>") // 2
        blocks += count
        if args.save:
            replies.append(reply)
            labels.extend(block_labels(reply))
        return reply, count

    started = time.monotonic()
    while True:
        reply, count = exchange(poll_request(f"poll-{requests}", args.feed, begin))
        if count == 0:
            break
        part = 1
        while re.search(rb"<[^>]*Poll_Response[^>]* more=\"(true|1)\"", reply):
            result_id = re.search(rb' result_id="([^"]+)"', reply).group(1).decode()
            part += 1
            reply, _ = exchange(
                f'<t:Poll_Fulfillment xmlns:t="{NS}" message_id="part-{requests}" '
                f'collection_name="{args.feed}" result_id="{result_id}" result_part_number="{part}"/>'
            )
        # Block labels rather than the response's end label, which OpenTAXII
        # leaves out when the request set no end.
        begin = max(block_labels(reply), key=label_key)
    seconds = time.monotonic() - started
    if args.expect is not None and blocks != args.expect:
        sys.exit(f"poll of {args.base} brought {blocks} blocks, not {args.expect}")
    if args.save:
        save = pathlib.Path(args.save)
        save.mkdir(parents=True, exist_ok=True)
        for n, reply in enumerate(replies):
            (save / f"reply-{n:04}.xml").write_bytes(reply)
        (save / "labels").write_text("\n".join(labels) + "\n")
    print(json.dumps({"blocks": blocks, "requests": requests, "bytes": size, "seconds": seconds}))


def inbox_body(args):
    print(inbox_message("bench-inbox", args.feed, [0]))


def window_body(args):
    """A poll of the feed's latest 10 blocks, bounded on both sides so that
    what the inbox adds meanwhile changes nothing."""
    labels = sorted(pathlib.Path(args.labels).read_text().split(), key=label_key)
    if len(labels) < 11:
        sys.exit("the recent window needs a feed of at least 11 blocks")
    print(poll_request("bench-window", args.feed, labels[-11], labels[-1]))


def block_labels(reply):
    return [m.decode() for m in re.findall(rb"<(?:\w+:)?Timestamp_Label>([^<]+)<", reply)]


def label_key(label):
    # Both servers write UTC labels; they differ only in fractional digits.
    stamp = label.replace("Z", "+00:00")
    head, _, zone = stamp.rpartition("+")
    whole, _, fraction = head.partition(".")
    return whole, fraction.ljust(9, "0"), zone


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("token")
    p.add_argument("base")
    p.add_argument("user")
    p.add_argument("password")
    p.set_defaults(run=token)
    p = sub.add_parser("fill")
    p.add_argument("base")
    p.add_argument("auth")
    p.add_argument("feed")
    p.add_argument("blocks", type=int)
    p.set_defaults(run=fill)
    p = sub.add_parser("full-poll")
    p.add_argument("base")
    p.add_argument("auth")
    p.add_argument("feed")
    p.add_argument("--path", default="/feeds/public")
    p.add_argument("--expect", type=int)
    p.add_argument("--save")
    p.set_defaults(run=full_poll)
    p = sub.add_parser("inbox-body")
    p.add_argument("feed")
    p.set_defaults(run=inbox_body)
    p = sub.add_parser("window-body")
    p.add_argument("labels")
    p.add_argument("feed")
    p.set_defaults(run=window_body)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
