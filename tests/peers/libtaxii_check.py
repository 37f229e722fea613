"""libtaxii's side of tests/libtaxii.rs.

    libtaxii_check.py read DIR   for each DIR/10-*.xml and DIR/11-*.xml: parse it
                                 with libtaxii, write DIR/<name>.libtaxii.xml
                                 with its to_xml(), print {file: summary}
    libtaxii_check.py build DIR  build one message of every 1.0 and 1.1 type with
                                 libtaxii's constructors, write DIR/<v>-<type>.xml,
                                 print {file: summary}

A summary is a JSON object of the fields libtaxii holds, in the dialect-neutral
keys that tests/libtaxii.rs computes from taxiway's own model. A file libtaxii
cannot read is reported as {"error": "..."}.
"""

import calendar
import datetime
import json
import os
import re
import sys
import traceback

import libtaxii.messages_10 as tm10
import libtaxii.messages_11 as tm11
import libtaxii.taxii_default_query  # noqa: F401 (registers the default query format)
from libtaxii.constants import (
    ACT_SUBSCRIBE,
    CT_DATA_SET,
    RT_COUNT_ONLY,
    SS_ACTIVE,
    SS_PAUSED,
    ST_PENDING,
    ST_UNSUPPORTED_CONTENT_BINDING,
    SVC_INBOX,
    SVC_POLL,
    VID_TAXII_HTTP_10,
    VID_TAXII_HTTPS_10,
    VID_TAXII_SERVICES_10,
    VID_TAXII_SERVICES_11,
    VID_TAXII_XML_10,
    VID_TAXII_XML_11,
)

STIX = "urn:stix.mitre.org:xml:1.1.1"
ID_ATTRIBUTE = re.compile(r'\sid="([^"]*)"')


def micros(value):
    """A timestamp label as microseconds since the epoch (UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        from libtaxii.common import parse_datetime_string

        value = parse_datetime_string(value)
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc)
    return calendar.timegm(value.utctimetuple()) * 1_000_000 + value.microsecond


def binding_id(binding):
    return binding if isinstance(binding, str) else binding.binding_id


def subtypes(binding):
    return [] if isinstance(binding, str) else list(binding.subtype_ids or [])


def header_value(value):
    return value if isinstance(value, str) else "<xml>"


def block(b):
    content = b.content
    if isinstance(content, bytes):
        content = content.decode("utf-8")
    elif not isinstance(content, str):
        from lxml import etree

        content = etree.tostring(content, encoding="unicode")
    return {
        "binding": binding_id(b.content_binding),
        "subtypes": subtypes(b.content_binding),
        "label": micros(b.timestamp_label),
        "message": getattr(b, "message", None),
        "padding": b.padding,
        "xml": bool(b.content_is_xml),
        "ids": ID_ATTRIBUTE.findall(content),
    }


def detail(value):
    """A 1.1 status detail value as written on the wire (libtaxii types some)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tm11.ContentBinding):
        return value.binding_id
    return str(value)


def addresses(endpoints, attribute):
    return [getattr(e, attribute) for e in endpoints or []]


def summary(m):
    s = {
        "type": m.message_type,
        "id": m.message_id,
        "in_response_to": m.in_response_to,
        "headers": {k: header_value(v) for k, v in m.extended_headers.items()},
    }
    v11 = isinstance(m, tm11.TAXIIMessage)
    kind = type(m).__name__
    if kind == "DiscoveryResponse":
        s["services"] = [
            {
                "type": i.service_type,
                "version": i.services_version,
                "protocol": i.protocol_binding,
                "address": i.service_address,
                "bindings": list(i.message_bindings),
                "contents": [binding_id(c) for c in i.inbox_service_accepted_content or []],
                "available": i.available,
                "message": i.message,
                "queries": [q.format_id for q in getattr(i, "supported_query", None) or []],
            }
            for i in m.service_instances
        ]
    elif kind in ("FeedInformationResponse", "CollectionInformationResponse"):
        infos = m.collection_informations if v11 else m.feed_informations
        s["collections"] = [
            {
                "name": c.collection_name if v11 else c.feed_name,
                "description": c.collection_description if v11 else c.feed_description,
                "collection_type": c.collection_type if v11 else None,
                "available": c.available,
                "volume": c.collection_volume if v11 else None,
                "contents": [binding_id(b) for b in c.supported_contents or []],
                "push": [[p.push_protocol, list(p.push_message_bindings)] for p in c.push_methods or []],
                "polling": addresses(c.polling_service_instances, "poll_address"),
                "subscription": addresses(c.subscription_methods, "subscription_address"),
                "inboxes": addresses(getattr(c, "receiving_inbox_services", None), "inbox_address"),
            }
            for c in infos
        ]
    elif kind in ("ManageFeedSubscriptionRequest", "ManageCollectionSubscriptionRequest"):
        push = m.push_parameters if v11 else m.delivery_parameters
        params = m.subscription_parameters if v11 else None
        s.update(
            name=m.collection_name if v11 else m.feed_name,
            action=m.action,
            subscription_id=m.subscription_id,
            push_address=push.inbox_address if push else None,
            response_type=params.response_type if params else None,
            contents=[binding_id(b) for b in (params.content_bindings if params else [])],
        )
    elif kind in ("ManageFeedSubscriptionResponse", "ManageCollectionSubscriptionResponse"):
        s.update(
            name=m.collection_name if v11 else m.feed_name,
            message=m.message,
            subscriptions=[
                {
                    "id": i.subscription_id,
                    # libtaxii leaves the schema's default (ACTIVE) as None.
                    "status": (i.status or SS_ACTIVE) if v11 else None,
                    "push_address": (lambda p: p.inbox_address if p else None)(
                        i.push_parameters if v11 else i.delivery_parameters
                    ),
                    "polls": addresses(i.poll_instances, "poll_address"),
                }
                for i in m.subscription_instances
            ],
        )
    elif kind == "PollRequest":
        params = m.poll_parameters if v11 else None
        s.update(
            name=m.collection_name if v11 else m.feed_name,
            begin=micros(m.exclusive_begin_timestamp_label),
            end=micros(m.inclusive_end_timestamp_label),
            subscription_id=m.subscription_id,
            response_type=params.response_type if params else None,
            allow_asynch=params.allow_asynch if params else None,
            contents=[binding_id(b) for b in (params.content_bindings if v11 and params else getattr(m, "content_bindings", None)) or []],
        )
    elif kind == "PollResponse":
        s.update(
            name=m.collection_name if v11 else m.feed_name,
            end=micros(m.inclusive_end_timestamp_label),
            subscription_id=m.subscription_id,
            message=m.message,
            blocks=[block(b) for b in m.content_blocks],
        )
        if v11:
            s.update(
                begin=micros(m.exclusive_begin_timestamp_label),
                more=bool(m.more),
                result_id=m.result_id,
                part=int(m.result_part_number),
                record_count=m.record_count.record_count if m.record_count else None,
                partial=m.record_count.partial_count if m.record_count else None,
            )
        else:
            s["begin_inclusive"] = micros(m.inclusive_begin_timestamp_label)
    elif kind == "PollFulfillmentRequest":
        s.update(name=m.collection_name, result_id=m.result_id, part=int(m.result_part_number))
    elif kind == "InboxMessage":
        info = m.subscription_information
        s.update(message=m.message, blocks=[block(b) for b in m.content_blocks])
        if info is not None:
            source = {
                "name": info.collection_name if v11 else info.feed_name,
                "subscription_id": info.subscription_id,
                "end": micros(info.inclusive_end_timestamp_label),
            }
            if v11:
                source["begin"] = micros(info.exclusive_begin_timestamp_label)
            else:
                source["begin_inclusive"] = micros(info.inclusive_begin_timestamp_label)
            s["source"] = source
        else:
            s["source"] = None
        if v11:
            s.update(
                result_id=m.result_id,
                destinations=list(m.destination_collection_names or []),
                record_count=m.record_count.record_count if m.record_count else None,
            )
    elif kind == "StatusMessage":
        s.update(status_type=m.status_type, message=m.message)
        if v11:
            s["details"] = {
                k: [detail(x) for x in (v if isinstance(v, list) else [v])]
                for k, v in (m.status_detail or {}).items()
            }
        else:
            s["detail_text"] = m.status_detail
    return s


def read(directory):
    out = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".xml") or name.endswith(".libtaxii.xml"):
            continue
        module = {"10": tm10, "11": tm11}.get(name[:2])
        if module is None:
            continue
        path = os.path.join(directory, name)
        try:
            with open(path, "rb") as f:
                message = module.get_message_from_xml(f.read())
            xml = message.to_xml()
            if isinstance(xml, str):
                xml = xml.encode("utf-8")
            with open(path[: -len(".xml")] + ".libtaxii.xml", "wb") as f:
                f.write(xml)
            out[name] = summary(message)
        except Exception:
            out[name] = {"error": traceback.format_exc()}
    return out


def stix(package_id, indicator_id):
    return (
        '<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" '
        'xmlns:indicator="http://stix.mitre.org/Indicator-2" '
        'xmlns:example="http://example.com" id="%s" version="1.1.1">'
        "<stix:Indicators><stix:Indicator xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
        'xsi:type="indicator:IndicatorType" id="%s"><indicator:Title>Evil &amp; co</indicator:Title>'
        "</stix:Indicator></stix:Indicators></stix:STIX_Package>" % (package_id, indicator_id)
    )


UTC = datetime.timezone.utc
T1 = datetime.datetime(2014, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
T2 = datetime.datetime(2014, 3, 2, 8, 0, 0, 500, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
HEADERS = {"urn:example.com:header:origin": "peer-b", "urn:example.com:header:priority": "7"}
HTTPS = VID_TAXII_HTTPS_10


def build_10():
    cb = tm10.ContentBlock(STIX, stix("example:package-10", "example:indicator-10"), timestamp_label=T1, padding="xyz")
    text_cb = tm10.ContentBlock("urn:example.com:text", "plain & simple", timestamp_label=T2)
    push = tm10.DeliveryParameters(HTTPS, "https://subscriber.example.com/inbox", VID_TAXII_XML_10)
    feed = tm10.FeedInformation(
        "Gold",
        "Up-to-the-minute threat information.",
        [STIX, "urn:example.com:text"],
        available=True,
        push_methods=[tm10.PushMethod(HTTPS, [VID_TAXII_XML_10])],
        polling_service_instances=[tm10.PollingServiceInstance(HTTPS, "https://taxii.example.com/poll", [VID_TAXII_XML_10])],
        subscription_methods=[tm10.SubscriptionMethod(HTTPS, "https://taxii.example.com/feeds", [VID_TAXII_XML_10])],
    )
    return {
        "discovery_request": tm10.DiscoveryRequest("1001", extended_headers=HEADERS),
        "discovery_response": tm10.DiscoveryResponse(
            "1002",
            "1001",
            service_instances=[
                tm10.ServiceInstance(SVC_INBOX, VID_TAXII_SERVICES_10, HTTPS, "https://taxii.example.com/inbox",
                                     [VID_TAXII_XML_10], inbox_service_accepted_content=[STIX], available=True,
                                     message="Send STIX here"),
                tm10.ServiceInstance(SVC_POLL, VID_TAXII_SERVICES_10, VID_TAXII_HTTP_10, "http://taxii.example.com/poll",
                                     [VID_TAXII_XML_10], available=False),
            ],
        ),
        "feed_information_request": tm10.FeedInformationRequest("1003"),
        "feed_information_response": tm10.FeedInformationResponse("1004", "1003", feed_informations=[feed]),
        "subscription_management_request": tm10.ManageFeedSubscriptionRequest(
            "1005", feed_name="Gold", action=ACT_SUBSCRIBE, delivery_parameters=push
        ),
        "subscription_management_response": tm10.ManageFeedSubscriptionResponse(
            "1006",
            "1005",
            feed_name="Gold",
            message="Subscribed",
            subscription_instances=[
                tm10.SubscriptionInstance(
                    "sub-JGK8H84BF",
                    delivery_parameters=push,
                    poll_instances=[tm10.PollInstance(HTTPS, "https://taxii.example.com/poll", [VID_TAXII_XML_10])],
                )
            ],
        ),
        "poll_request": tm10.PollRequest(
            "1007", extended_headers=HEADERS, feed_name="Gold", exclusive_begin_timestamp_label=T1,
            inclusive_end_timestamp_label=T2, subscription_id="sub-JGK8H84BF", content_bindings=[STIX]
        ),
        "poll_response": tm10.PollResponse(
            "1008", "1007", feed_name="Gold", inclusive_begin_timestamp_label=T1, inclusive_end_timestamp_label=T2,
            subscription_id="sub-JGK8H84BF", message="Two blocks", content_blocks=[cb, text_cb]
        ),
        "inbox_message": tm10.InboxMessage(
            "1009", extended_headers=HEADERS, message="Pushed",
            subscription_information=tm10.SubscriptionInformation("Gold", "sub-JGK8H84BF", T1, T2),
            content_blocks=[cb],
        ),
        "status_message": tm10.StatusMessage(
            "1010", "1009", status_type=ST_UNSUPPORTED_CONTENT_BINDING, status_detail=STIX,
            message="Only STIX 1.1.1 & nothing else"
        ),
    }


def build_11():
    cb = tm11.ContentBlock(
        tm11.ContentBinding(STIX, subtype_ids=["urn:example.com:subtype:indicators"]),
        stix("example:package-11", "example:indicator-11"),
        timestamp_label=T1, padding="0000", message="first block",
    )
    text_cb = tm11.ContentBlock(tm11.ContentBinding("urn:example.com:text"), "plain <not xml> text", timestamp_label=T2)
    push = tm11.PushParameters(HTTPS, "https://subscriber.example.com/inbox", VID_TAXII_XML_11)
    params = tm11.SubscriptionParameters(response_type=RT_COUNT_ONLY, content_bindings=[tm11.ContentBinding(STIX)])
    collection = tm11.CollectionInformation(
        "Gold",
        "Up-to-the-minute threat information.",
        supported_contents=[tm11.ContentBinding(STIX, subtype_ids=["urn:example.com:subtype:indicators"])],
        available=True,
        push_methods=[tm11.PushMethod(HTTPS, [VID_TAXII_XML_11])],
        polling_service_instances=[tm11.PollingServiceInstance(HTTPS, "https://taxii.example.com/poll", [VID_TAXII_XML_11])],
        subscription_methods=[tm11.SubscriptionMethod(HTTPS, "https://taxii.example.com/collections", [VID_TAXII_XML_11])],
        collection_volume=42,
        collection_type=CT_DATA_SET,
        receiving_inbox_services=[
            tm11.ReceivingInboxService(HTTPS, "https://taxii.example.com/inbox", [VID_TAXII_XML_11], [tm11.ContentBinding(STIX)])
        ],
    )
    return {
        "discovery_request": tm11.DiscoveryRequest("urn:uuid:00000000-0000-4000-8000-000000000001", extended_headers=HEADERS),
        "discovery_response": tm11.DiscoveryResponse(
            "m-2",
            "urn:uuid:00000000-0000-4000-8000-000000000001",
            service_instances=[
                tm11.ServiceInstance(SVC_INBOX, VID_TAXII_SERVICES_11, HTTPS, "https://taxii.example.com/inbox",
                                     [VID_TAXII_XML_11], inbox_service_accepted_content=[tm11.ContentBinding(STIX)],
                                     available=True, message="Send STIX here"),
                tm11.ServiceInstance(SVC_POLL, VID_TAXII_SERVICES_11, VID_TAXII_HTTP_10, "http://taxii.example.com/poll",
                                     [VID_TAXII_XML_11, VID_TAXII_XML_10], available=False),
            ],
        ),
        "collection_information_request": tm11.CollectionInformationRequest("m-3"),
        "collection_information_response": tm11.CollectionInformationResponse("m-4", "m-3", collection_informations=[collection]),
        "subscription_management_request": tm11.ManageCollectionSubscriptionRequest(
            "m-5", extended_headers=HEADERS, collection_name="Gold", action=ACT_SUBSCRIBE,
            subscription_parameters=params, push_parameters=push
        ),
        "subscription_management_response": tm11.ManageCollectionSubscriptionResponse(
            "m-6", "m-5", collection_name="Gold", message="Subscribed",
            subscription_instances=[
                tm11.SubscriptionInstance(
                    "sub-JGK8H84BF", status=SS_PAUSED, subscription_parameters=params, push_parameters=push,
                    poll_instances=[tm11.PollInstance(HTTPS, "https://taxii.example.com/poll", [VID_TAXII_XML_11])],
                )
            ],
        ),
        "poll_request": tm11.PollRequest(
            "m-7", collection_name="Gold", exclusive_begin_timestamp_label=T1, inclusive_end_timestamp_label=T2,
            poll_parameters=tm11.PollParameters(response_type=RT_COUNT_ONLY, content_bindings=[tm11.ContentBinding(STIX)],
                                                allow_asynch=True,
                                                delivery_parameters=tm11.DeliveryParameters(
                                                    HTTPS, "https://subscriber.example.com/inbox", VID_TAXII_XML_11)),
        ),
        "poll_response": tm11.PollResponse(
            "m-8", "m-7", extended_headers=HEADERS, collection_name="Gold", exclusive_begin_timestamp_label=T1,
            inclusive_end_timestamp_label=T2, message="Part two", content_blocks=[cb, text_cb], more=True,
            result_id="result-77", result_part_number=2, record_count=tm11.RecordCount(120, partial_count=True),
        ),
        "poll_fulfillment": tm11.PollFulfillmentRequest("m-9", collection_name="Gold", result_id="result-77", result_part_number=3),
        "inbox_message": tm11.InboxMessage(
            "m-10", message="Pushed", result_id="result-77", destination_collection_names=["Gold", "Silver"],
            subscription_information=tm11.SubscriptionInformation("Gold", "sub-JGK8H84BF", T1, T2),
            record_count=tm11.RecordCount(2), content_blocks=[cb, text_cb],
        ),
        "status_message": tm11.StatusMessage(
            "m-11", "m-10", extended_headers=HEADERS, status_type=ST_PENDING,
            status_detail={"ESTIMATED_WAIT": 30, "RESULT_ID": "result-77", "WILL_PUSH": False},
            message="Come back later",
        ),
    }


def build(directory):
    out = {}
    for version, messages in (("10", build_10()), ("11", build_11())):
        for kind, message in messages.items():
            name = "%s-%s.xml" % (version, kind)
            xml = message.to_xml()
            if isinstance(xml, str):
                xml = xml.encode("utf-8")
            with open(os.path.join(directory, name), "wb") as f:
                f.write(xml)
            # The summary of what libtaxii reads back, so that the values are
            # in the same form as in `read`.
            module = tm11 if version == "11" else tm10
            out[name] = summary(module.get_message_from_xml(xml))
            out[name]["kind"] = kind
    return out


def main():
    mode, directory = sys.argv[1], sys.argv[2]
    result = {"read": read, "build": build}[mode](directory)
    json.dump(result, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
