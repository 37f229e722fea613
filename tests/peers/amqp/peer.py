"""A third-party AMQP peer for tests/amqp_bridge.rs, written with pika.

Subcommands (the broker URI is always the first argument):

  bind URI EXCHANGE TYPE QUEUE KEY
      Declares EXCHANGE (durable, of TYPE) and QUEUE (durable), and binds them.
  get URI QUEUE COUNT SECONDS
      Takes messages from QUEUE until COUNT distinct message ids were seen or
      SECONDS passed; prints one JSON object per message and line
      (properties, headers, body as hex), acking each.
  publish URI EXCHANGE ROUTING_KEY BODY_FILE [--message-id ID] [--header NAME=VALUE]...
      Publishes persistently with confirms and mandatory routing; retries an
      unroutable publish for up to 30 s (the queue may not be declared yet).
  publish-many URI QUEUE COUNT FEED BINDING
      Publishes COUNT small STIX packages to QUEUE (through the default
      exchange) for FEED, message ids bulk-0..bulk-(COUNT-1), with confirms.
  declare-queue URI QUEUE DEAD_LETTER_EXCHANGE
      Declares QUEUE (durable) dead-lettering to DEAD_LETTER_EXCHANGE, as
      taxiway's ingress declares it.
  count URI QUEUE
      Prints how many messages QUEUE holds ready.
  delete URI [--queue NAME]... [--exchange NAME]...
      Deletes what it is told to; missing ones are fine.

It exits non-zero with a message on any failure.
"""

import argparse
import json
import sys
import time

import pika
import pika.exceptions


def connect(uri):
    return pika.BlockingConnection(pika.URLParameters(uri))


def text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [text(v) for v in value]
    if isinstance(value, dict):
        return {k: text(v) for k, v in value.items()}
    return value


def bind(args):
    connection = connect(args.uri)
    channel = connection.channel()
    channel.exchange_declare(args.exchange, exchange_type=args.type, durable=True)
    channel.queue_declare(args.queue, durable=True)
    channel.queue_bind(args.queue, args.exchange, routing_key=args.key)
    connection.close()


def get(args):
    connection = connect(args.uri)
    channel = connection.channel()
    seen = set()
    deadline = time.monotonic() + args.seconds
    while len(seen) < args.count and time.monotonic() < deadline:
        method, properties, body = channel.basic_get(args.queue, auto_ack=False)
        if method is None:
            time.sleep(0.1)
            continue
        headers = text(properties.headers or {})
        seen.add(properties.message_id or headers.get("x-taxii-message-id"))
        print(
            json.dumps(
                {
                    "routing_key": method.routing_key,
                    "redelivered": method.redelivered,
                    "properties": {
                        "content_type": properties.content_type,
                        "content_encoding": properties.content_encoding,
                        "delivery_mode": properties.delivery_mode,
                        "message_id": properties.message_id,
                        "correlation_id": properties.correlation_id,
                        "timestamp": properties.timestamp,
                        "type": properties.type,
                        "app_id": properties.app_id,
                    },
                    "headers": headers,
                    "body_hex": body.hex(),
                },
                default=str,
            ),
            flush=True,
        )
        channel.basic_ack(method.delivery_tag)
    connection.close()


def publish(args):
    with open(args.body_file, "rb") as f:
        body = f.read()
    headers = {}
    for header in args.header:
        name, _, value = header.partition("=")
        headers[name] = value
    properties = pika.BasicProperties(
        delivery_mode=2,
        message_id=args.message_id,
        content_type=args.content_type,
        headers=headers or None,
    )
    connection = connect(args.uri)
    channel = connection.channel()
    channel.confirm_delivery()
    deadline = time.monotonic() + 30
    while True:
        try:
            channel.basic_publish(
                args.exchange, args.routing_key, body, properties, mandatory=True
            )
            break
        except pika.exceptions.UnroutableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    connection.close()


def publish_many(args):
    connection = connect(args.uri)
    channel = connection.channel()
    channel.confirm_delivery()
    for n in range(args.count):
        body = (
            '<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" '
            'id="example:p-%d" version="1.1.1"/>' % n
        ).encode()
        properties = pika.BasicProperties(
            delivery_mode=2,
            message_id="bulk-%d" % n,
            headers={
                "x-taxii-collection": args.feed,
                "x-taxii-content-binding": args.binding,
            },
        )
        channel.basic_publish("", args.queue, body, properties, mandatory=True)
    connection.close()


def declare_queue(args):
    connection = connect(args.uri)
    channel = connection.channel()
    channel.queue_declare(
        args.queue,
        durable=True,
        arguments={"x-dead-letter-exchange": args.dead_letter_exchange},
    )
    connection.close()


def count(args):
    connection = connect(args.uri)
    channel = connection.channel()
    print(channel.queue_declare(args.queue, passive=True).method.message_count)
    connection.close()


def delete(args):
    connection = connect(args.uri)
    channel = connection.channel()
    for queue in args.queue:
        channel.queue_delete(queue)
    for exchange in args.exchange:
        channel.exchange_delete(exchange)
    connection.close()


def main():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("bind")
    for name in ("uri", "exchange", "type", "queue", "key"):
        p.add_argument(name)
    p.set_defaults(run=bind)

    p = commands.add_parser("get")
    p.add_argument("uri")
    p.add_argument("queue")
    p.add_argument("count", type=int)
    p.add_argument("seconds", type=float)
    p.set_defaults(run=get)

    p = commands.add_parser("publish")
    for name in ("uri", "exchange", "routing_key", "body_file"):
        p.add_argument(name)
    p.add_argument("--message-id")
    p.add_argument("--content-type")
    p.add_argument("--header", action="append", default=[])
    p.set_defaults(run=publish)

    p = commands.add_parser("publish-many")
    p.add_argument("uri")
    p.add_argument("queue")
    p.add_argument("count", type=int)
    p.add_argument("feed")
    p.add_argument("binding")
    p.set_defaults(run=publish_many)

    p = commands.add_parser("declare-queue")
    for name in ("uri", "queue", "dead_letter_exchange"):
        p.add_argument(name)
    p.set_defaults(run=declare_queue)

    p = commands.add_parser("count")
    p.add_argument("uri")
    p.add_argument("queue")
    p.set_defaults(run=count)

    p = commands.add_parser("delete")
    p.add_argument("uri")
    p.add_argument("--queue", action="append", default=[])
    p.add_argument("--exchange", action="append", default=[])
    p.set_defaults(run=delete)

    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
