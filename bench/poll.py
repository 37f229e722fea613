#!/usr/bin/env python3
"""Fills a feed through a TAXII 1.1 inbox, then polls it in full, following
result parts and end labels, and prints the seconds the full poll took.

Usage: poll.py BASE_URL FEED BLOCKS [--fill] [--auth user:password]
Only the standard library: it runs with any Python 3.
"""
import argparse
import base64
import re
import time
import urllib.request

NS = "http://taxii.mitre.org/messages/taxii_xml_binding-1.1"
HEADERS = {
    "Content-Type": "application/xml",
    "X-TAXII-Content-Type": "urn:taxii.mitre.org:message:xml:1.1",
    "X-TAXII-Services": "urn:taxii.mitre.org:services:1.1",
    "X-TAXII-Protocol": "urn:taxii.mitre.org:protocol:http:1.0",
}
PACKAGE = (
    '<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" id="example:Package-{n}" version="1.1.1">'
    "<stix:STIX_Header><stix:Title>Package {n}</stix:Title><stix:Description>{pad}</stix:Description>"
    "</stix:STIX_Header></stix:STIX_Package>"
)


def post(url, body, auth):
    headers = dict(HEADERS)
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read().decode()


def fill(base, feed, blocks, auth):
    pad = "x" * 1900
    per_message = 100
    for first in range(0, blocks, per_message):
        content = "".join(
            f'<t:Content_Block><t:Content_Binding binding_id="urn:stix.mitre.org:xml:1.1.1"/>'
            f"<t:Content>{PACKAGE.format(n=n, pad=pad)}</t:Content></t:Content_Block>"
            for n in range(first, min(first + per_message, blocks))
        )
        body = (
            f'<t:Inbox_Message xmlns:t="{NS}" message_id="fill-{first}">'
            f"<t:Destination_Collection_Name>{feed}</t:Destination_Collection_Name>{content}</t:Inbox_Message>"
        )
        reply = post(base + "/inbox", body, auth)
        if 'status_type="SUCCESS"' not in reply:
            raise SystemExit(f"filling failed: {reply[:300]}")


def poll_all(base, feed, path, auth):
    """Polls from the start, fetching the parts of a multi-part result with
    Poll_Fulfillment, then continuing from the result's end label until a
    poll returns nothing."""
    begin, total, requests, size = None, 0, 0, 0
    while True:
        bound = f"<t:Exclusive_Begin_Timestamp>{begin}</t:Exclusive_Begin_Timestamp>" if begin else ""
        body = (
            f'<t:Poll_Request xmlns:t="{NS}" message_id="poll-{requests}" collection_name="{feed}">{bound}'
            f"<t:Poll_Parameters><t:Response_Type>FULL</t:Response_Type></t:Poll_Parameters></t:Poll_Request>"
        )
        reply = post(base + path, body, auth)
        requests += 1
        size += len(reply)
        blocks = reply.count("Content_Block>") // 2
        if blocks == 0:
            return total, requests, size
        total += blocks
        part = 1
        while re.search(r'<[^>]*Poll_Response[^>]* more="(true|1)"', reply):
            result_id = re.search(r' result_id="([^"]+)"', reply).group(1)
            part += 1
            body = (
                f'<t:Poll_Fulfillment xmlns:t="{NS}" message_id="fulfil-{requests}" collection_name="{feed}" '
                f'result_id="{result_id}" result_part_number="{part}"/>'
            )
            reply = post(base + path, body, auth)
            requests += 1
            size += len(reply)
            total += reply.count("Content_Block>") // 2
        begin = re.search(r"Inclusive_End_Timestamp>([^<]+)<", reply).group(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("feed")
    parser.add_argument("blocks", type=int)
    parser.add_argument("--path", default="/feeds/public")
    parser.add_argument("--fill", action="store_true")
    parser.add_argument("--auth", default="")
    args = parser.parse_args()
    if args.fill:
        fill(args.base, args.feed, args.blocks, args.auth)
    started = time.monotonic()
    total, requests, size = poll_all(args.base, args.feed, args.path, args.auth)
    elapsed = time.monotonic() - started
    print(f"full poll: {total} blocks, {size / 1e6:.1f} MB in {requests} responses, {elapsed:.2f} s")


if __name__ == "__main__":
    main()
