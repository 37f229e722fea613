"""Reads a ROLIE collection the way a feed reader does: feedparser parses
each page, and the walk follows the RFC 5005 "next" links to the end.

Usage: walk.py FEED_URL [--auth user:password]
Prints one JSON object: the pages read, each page's bozo flag and reason,
the entry ids in order, each entry's content link and type, and the feed's
links by relation.
"""
import argparse
import base64
import json
import urllib.request

import feedparser


def fetch(url, auth):
    request = urllib.request.Request(url, headers={"Accept": "application/atom+xml"})
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--auth", default="")
    args = parser.parse_args()
    url, pages, entries, first_links = args.url, [], [], None
    while url and len(pages) < 1000:
        parsed = feedparser.parse(fetch(url, args.auth))
        links = {link.get("rel"): link.get("href") for link in parsed.feed.get("links", [])}
        if first_links is None:
            first_links = links
        pages.append({
            "url": url,
            "bozo": bool(parsed.bozo),
            "bozo_exception": str(parsed.get("bozo_exception", "")),
            "entries": len(parsed.entries),
        })
        for entry in parsed.entries:
            content = entry.get("content", [{}])[0] if entry.get("content") else {}
            src = None
            for link in entry.get("links", []):
                if link.get("rel") == "self":
                    src = link.get("href")
            entries.append({
                "id": entry.get("id"),
                "updated": entry.get("updated"),
                "content_src": content.get("src") or entry.get("content_src") or None,
                "content_type": content.get("type"),
                "self": src,
            })
        url = links.get("next")
    print(json.dumps({"pages": pages, "entries": entries, "links": first_links}))


if __name__ == "__main__":
    main()
