//! Property tests of the XML codec: any core message, made fit for a dialect
//! by `convert`, is written and read back unchanged in that dialect, and
//! converting it again changes nothing.
//!
//! The generators stay within what the codec documents: strings are XML
//! characters; identifiers, names, addresses and binding ids carry no
//! surrounding whitespace (the reader trims it as layout); XML payloads are
//! elements declaring their own namespace; signatures are `ds:Signature`
//! elements; and messages obey the rules every dialect's reader enforces
//! (an UNSUBSCRIBE names its subscription, `more="true"` has a result id, a
//! service lists a message binding...).

use proptest::prelude::*;
use taxiway::bindings::taxii_xml::{convert, parse, serialize};
use taxiway::core::*;

// ---- strings ----

/// Characters of an identifier or name: no whitespace at either end.
const TOKEN_CHAR: &str = "[a-zA-Z0-9:/._&<>\"'é#-]";

fn regex(pattern: &str) -> BoxedStrategy<String> {
    proptest::string::string_regex(pattern).unwrap().boxed()
}

fn token() -> BoxedStrategy<String> {
    prop_oneof![
        regex(&format!("{TOKEN_CHAR}{{1,10}}")),
        regex(&format!(
            "{TOKEN_CHAR}[a-zA-Z0-9 &<>\"'\t.]{{0,6}}{TOKEN_CHAR}"
        )),
        Just("urn:example:x".to_owned()).boxed(),
    ]
    .boxed()
}

/// Free text: any XML characters, whitespace and markup characters included.
fn text() -> BoxedStrategy<String> {
    "[\t\n\r -~\u{a0}-\u{d7ff}\u{e000}-\u{fffd}\u{10000}-\u{10ffff}]{0,12}"
        .prop_map(String::from)
        .boxed()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\r', "&#13;")
}

fn ncname() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_.-]{0,6}"
}

/// A small well-formed element declaring its own namespace.
fn xml_element() -> BoxedStrategy<String> {
    (ncname(), text(), 0..3u8, "[a-z]{1,3}")
        .prop_map(|(name, body, shape, ns)| match shape {
            0 => format!(
                "<p:{name} xmlns:p=\"urn:{ns}\">{}</p:{name}>",
                escape(&body)
            ),
            1 => format!(
                "<{name} xmlns=\"urn:{ns}\" a=\"{}\"/>",
                escape(&body).replace('"', "&quot;")
            ),
            _ => format!(
                "<q:{name} xmlns:q=\"urn:{ns}\"><q:i>{}</q:i><!-- c --></q:{name}>",
                escape(&body)
            ),
        })
        .boxed()
}

fn xml_payload() -> BoxedStrategy<String> {
    prop::collection::vec(xml_element(), 1..3)
        .prop_map(|parts| parts.concat())
        .boxed()
}

fn content() -> BoxedStrategy<XmlContent> {
    prop_oneof![
        text().prop_map(XmlContent::Text),
        xml_payload().prop_map(XmlContent::Xml),
    ]
    .boxed()
}

fn signature() -> BoxedStrategy<XmlContent> {
    text()
        .prop_map(|value| {
            XmlContent::Xml(format!(
                "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignatureValue>{}</ds:SignatureValue></ds:Signature>",
                escape(&value)
            ))
        })
        .boxed()
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop::option::of(s).boxed()
}

fn list<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
    max: usize,
) -> BoxedStrategy<Vec<T>> {
    prop::collection::vec(s, 0..=max).boxed()
}

fn some_of<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
    max: usize,
) -> BoxedStrategy<Vec<T>> {
    prop::collection::vec(s, 1..=max).boxed()
}

// ---- identifiers ----

fn message_id() -> BoxedStrategy<String> {
    prop_oneof![
        "[0-9]{1,20}".boxed(),
        "[0-9a-f]{32}".boxed(),
        "[0-9a-f]{4}( [0-9a-f]{4}){7}".boxed(),
        "urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".boxed(),
        Just("0".to_owned()).boxed(),
        token(),
    ]
    .boxed()
}

fn dialect() -> impl Strategy<Value = Dialect> {
    prop::sample::select(Dialect::ALL.to_vec())
}

fn protocol() -> BoxedStrategy<ProtocolBinding> {
    prop_oneof![
        Just(ProtocolBinding::Http),
        Just(ProtocolBinding::Https),
        "urn:other:proto:[a-z]{1,4}".prop_map(ProtocolBinding::Other),
    ]
    .boxed()
}

fn message_binding() -> BoxedStrategy<MessageBinding> {
    prop_oneof![
        dialect().prop_map(MessageBinding::Xml),
        "urn:other:msg:[a-z]{1,4}".prop_map(MessageBinding::Other),
    ]
    .boxed()
}

fn binding_id() -> BoxedStrategy<String> {
    prop_oneof![
        Just("urn:stix.mitre.org:xml:1.0".to_owned()),
        Just("urn:stix.mitre.org:xml:1.1.1".to_owned()),
        "urn:stix\\.mitre\\.org:xml:[0-9]\\.[0-9]",
        "urn:other:content:[a-z]{1,4}",
    ]
    .boxed()
}

fn content_binding() -> BoxedStrategy<ContentBinding> {
    (binding_id(), list(token(), 2))
        .prop_map(|(id, subtypes)| ContentBinding { id, subtypes })
        .boxed()
}

fn timestamp() -> BoxedStrategy<Timestamp> {
    (
        1900..2100i32,
        1..=12u32,
        1..=28u32,
        0..24u32,
        0..60u32,
        0..60u32,
        prop_oneof![Just(0u32), 0..1_000_000u32, 0..1_000_000_000u32],
        prop_oneof![
            Just(None),
            Just(Some(0i16)),
            (-14 * 60..=14 * 60i16).prop_map(Some)
        ],
    )
        .prop_map(|(y, mo, d, h, mi, s, frac, zone)| {
            let mut text = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
            if frac != 0 {
                text.push_str(&format!(".{frac:09}"));
            }
            match zone {
                None => {}
                Some(0) => text.push('Z'),
                Some(offset) => {
                    let sign = if offset < 0 { '-' } else { '+' };
                    let offset = offset.unsigned_abs();
                    text.push_str(&format!("{sign}{:02}:{:02}", offset / 60, offset % 60));
                }
            }
            text.parse().unwrap()
        })
        .boxed()
}

fn status_type() -> BoxedStrategy<StatusType> {
    use StatusType as S;
    prop_oneof![
        prop::sample::select(vec![
            S::AsynchronousPollError,
            S::BadMessage,
            S::Denied,
            S::DestinationCollectionError,
            S::Failure,
            S::InvalidResponsePart,
            S::NetworkError,
            S::NotFound,
            S::Pending,
            S::PollingUnsupported,
            S::ProtectionUnsupported,
            S::Retry,
            S::Success,
            S::Unauthorized,
            S::UnrecognizedValue,
            S::UnsupportedContent,
            S::UnsupportedMessage,
            S::UnsupportedProtocol,
            S::UnsupportedQuery,
            S::UnsupportedService,
        ]),
        "urn:other:status:[a-z]{1,5}".prop_map(S::Other),
    ]
    .boxed()
}

fn action() -> impl Strategy<Value = SubscriptionAction> {
    use SubscriptionAction as A;
    prop::sample::select(vec![
        A::Subscribe,
        A::Unsubscribe,
        A::Pause,
        A::Resume,
        A::Modify,
        A::Status,
    ])
}

// ---- structures ----

fn query() -> BoxedStrategy<Query> {
    (token(), content())
        .prop_map(|(format_id, content)| Query { format_id, content })
        .boxed()
}

fn service_instance() -> BoxedStrategy<ServiceInstance> {
    (
        prop::sample::select(vec![
            ServiceType::Discovery,
            ServiceType::FeedManagement,
            ServiceType::Inbox,
            ServiceType::Poll,
        ]),
        prop_oneof![
            dialect().prop_map(ServicesVersion::Taxii),
            "urn:other:services:[a-z]{1,4}".prop_map(ServicesVersion::Other),
        ],
        opt(any::<bool>()),
        protocol(),
        token(),
        some_of(message_binding(), 2),
        list(content_binding(), 2),
        list(query(), 2),
        opt(text()),
    )
        .prop_map(
            |(
                service_type,
                version,
                available,
                protocol,
                address,
                message_bindings,
                content_bindings,
                supported_queries,
                message,
            )| ServiceInstance {
                service_type,
                version,
                available,
                protocol,
                address,
                message_bindings,
                content_bindings,
                supported_queries,
                message,
            },
        )
        .boxed()
}

/// A 1.x endpoint: protocol, address and message bindings.
fn endpoint() -> BoxedStrategy<Endpoint> {
    (protocol(), token(), some_of(message_binding(), 2))
        .prop_map(|(protocol, address, message_bindings)| Endpoint {
            protocol: Some(protocol),
            address: Some(address),
            message_bindings,
        })
        .boxed()
}

/// A polling service as 1.x or the draft lists it.
fn polling_endpoint() -> BoxedStrategy<Endpoint> {
    prop_oneof![
        3 => endpoint(),
        1 => some_of(message_binding(), 2).prop_map(|message_bindings| Endpoint {
            protocol: None,
            address: None,
            message_bindings,
        }),
    ]
    .boxed()
}

fn feed() -> BoxedStrategy<FeedInfo> {
    (
        (
            token(),
            opt(prop_oneof![
                Just(CollectionType::DataFeed),
                Just(CollectionType::DataSet)
            ]),
            opt(any::<bool>()),
            text(),
            opt(any::<u64>()),
        ),
        (
            list(content_binding(), 2),
            list(
                (protocol(), some_of(message_binding(), 2)).prop_map(
                    |(protocol, message_bindings)| PushMethod {
                        protocol,
                        message_bindings,
                    },
                ),
                2,
            ),
            list(polling_endpoint(), 2),
            list(endpoint(), 2),
            list(
                (endpoint(), list(content_binding(), 2)).prop_map(
                    |(endpoint, content_bindings)| InboxEndpoint {
                        endpoint,
                        content_bindings,
                    },
                ),
                2,
            ),
        ),
    )
        .prop_map(
            |(
                (name, collection_type, available, description, volume),
                (
                    content_bindings,
                    push_methods,
                    polling_services,
                    subscription_services,
                    receiving_inboxes,
                ),
            )| FeedInfo {
                name,
                collection_type,
                available,
                description,
                volume,
                content_bindings,
                push_methods,
                polling_services,
                subscription_services,
                receiving_inboxes,
            },
        )
        .boxed()
}

fn selection() -> BoxedStrategy<SubscriptionParameters> {
    (
        opt(prop_oneof![
            Just(ResponseType::Full),
            Just(ResponseType::CountOnly)
        ]),
        list(content_binding(), 2),
        opt(query()),
    )
        .prop_map(
            |(response_type, content_bindings, query)| SubscriptionParameters {
                response_type,
                content_bindings,
                query,
            },
        )
        .boxed()
}

fn push_parameters() -> BoxedStrategy<PushParameters> {
    (protocol(), token(), message_binding())
        .prop_map(|(protocol, address, message_binding)| PushParameters {
            protocol,
            address,
            message_binding,
        })
        .boxed()
}

fn delivery() -> BoxedStrategy<Delivery> {
    prop_oneof![
        push_parameters().prop_map(Delivery::Push),
        opt(message_binding()).prop_map(|message_binding| Delivery::Poll { message_binding }),
    ]
    .boxed()
}

fn subscription_request() -> BoxedStrategy<SubscriptionRequest> {
    (
        token(),
        action(),
        token(),
        any::<bool>(),
        opt(selection()),
        opt(delivery()),
    )
        .prop_map(|(feed_name, action, id, with_id, parameters, delivery)| {
            use SubscriptionAction as A;
            // Every reader requires these: the subscription to act on, and
            // what a MODIFY changes it to.
            let needs_id = matches!(action, A::Unsubscribe | A::Pause | A::Resume | A::Modify);
            let delivery = match (action, delivery) {
                (A::Modify, None) => Some(Delivery::Poll {
                    message_binding: None,
                }),
                (_, delivery) => delivery,
            };
            SubscriptionRequest {
                feed_name,
                action,
                subscription_id: (needs_id || with_id).then_some(id),
                parameters,
                delivery,
            }
        })
        .boxed()
}

fn subscription_response() -> BoxedStrategy<SubscriptionResponse> {
    let record = (
        token(),
        opt(prop_oneof![
            Just(SubscriptionStatus::Active),
            Just(SubscriptionStatus::Paused),
            Just(SubscriptionStatus::Unsubscribed)
        ]),
        opt(selection()),
        opt(delivery()),
        list(endpoint(), 2),
    )
        .prop_map(
            |(id, status, parameters, delivery, poll_instances)| SubscriptionRecord {
                id,
                status,
                parameters,
                delivery,
                poll_instances,
            },
        );
    (token(), opt(text()), list(record, 3))
        .prop_map(|(feed_name, message, subscriptions)| SubscriptionResponse {
            feed_name,
            message,
            subscriptions,
        })
        .boxed()
}

fn poll_request() -> BoxedStrategy<PollRequest> {
    let parameters = (opt(any::<bool>()), selection(), opt(push_parameters())).prop_map(
        |(allow_asynch, selection, delivery)| PollParameters {
            allow_asynch,
            selection,
            delivery,
        },
    );
    (
        token(),
        opt(timestamp()),
        opt(timestamp()),
        opt(token()),
        opt(parameters),
    )
        .prop_map(
            |(feed_name, exclusive_begin, inclusive_end, subscription_id, parameters)| {
                PollRequest {
                    feed_name,
                    exclusive_begin,
                    inclusive_end,
                    subscription_id,
                    parameters,
                }
            },
        )
        .boxed()
}

fn record_count() -> BoxedStrategy<RecordCount> {
    (any::<u64>(), opt(any::<bool>()))
        .prop_map(|(count, partial)| RecordCount { count, partial })
        .boxed()
}

fn content_block() -> BoxedStrategy<ContentBlock> {
    (
        content_binding(),
        content(),
        opt(timestamp()),
        opt(text()),
        opt(text()),
        opt(signature()),
    )
        .prop_map(
            |(binding, content, timestamp_label, message, padding, signature)| ContentBlock {
                binding,
                content,
                timestamp_label,
                message,
                padding,
                signature,
            },
        )
        .boxed()
}

fn poll_response() -> BoxedStrategy<PollResponse> {
    (
        (
            opt(token()),
            opt(any::<bool>()),
            opt(token()),
            opt(1..1000u64),
            opt(token()),
        ),
        (
            opt(timestamp()),
            opt(timestamp()),
            opt(record_count()),
            opt(text()),
            list(content_block(), 3),
        ),
    )
        .prop_map(
            |(
                (feed_name, more, result_id, result_part_number, subscription_id),
                (exclusive_begin, inclusive_end, record_count, message, content_blocks),
            )| {
                // more="true" needs a result id to fetch the rest with.
                let result_id = match more {
                    Some(true) => result_id.or_else(|| Some("result".to_owned())),
                    _ => result_id,
                };
                PollResponse {
                    feed_name,
                    more,
                    result_id,
                    result_part_number,
                    subscription_id,
                    exclusive_begin,
                    inclusive_end,
                    record_count,
                    message,
                    content_blocks,
                }
            },
        )
        .boxed()
}

fn inbox() -> BoxedStrategy<InboxMessage> {
    let source = (
        opt(token()),
        opt(token()),
        opt(timestamp()),
        opt(timestamp()),
    )
        .prop_map(
            |(feed_name, subscription_id, exclusive_begin, inclusive_end)| SourceSubscription {
                feed_name,
                subscription_id,
                exclusive_begin,
                inclusive_end,
            },
        );
    (
        opt(token()),
        list(token(), 2),
        opt(text()),
        opt(source),
        opt(record_count()),
        list(content_block(), 3),
    )
        .prop_map(
            |(result_id, destination_feeds, message, source_subscription, record_count, blocks)| {
                InboxMessage {
                    result_id,
                    destination_feeds,
                    message,
                    source_subscription,
                    record_count,
                    content_blocks: blocks,
                }
            },
        )
        .boxed()
}

fn status() -> BoxedStrategy<StatusMessage> {
    let detail = (token(), content()).prop_map(|(name, value)| StatusDetail { name, value });
    (status_type(), list(detail, 3), opt(text()), opt(text()))
        .prop_map(
            |(status_type, details, detail_text, message)| StatusMessage {
                status_type,
                details,
                detail_text,
                message,
            },
        )
        .boxed()
}

fn subscription_alert() -> BoxedStrategy<SubscriptionAlert> {
    (
        (token(), action(), timestamp(), opt(status_type())),
        (
            token(),
            opt(delivery()),
            opt(content_binding()),
            opt(text()),
        ),
    )
        .prop_map(
            |(
                (feed_name, action, effective_time, status_type),
                (subscription_id, subscription, content_binding, message),
            )| SubscriptionAlert {
                feed_name,
                action,
                effective_time,
                status_type,
                subscription_id,
                subscription,
                content_binding,
                message,
            },
        )
        .boxed()
}

fn body() -> BoxedStrategy<Body> {
    prop_oneof![
        Just(Body::DiscoveryRequest),
        list(service_instance(), 3)
            .prop_map(|services| Body::DiscoveryResponse(DiscoveryResponse { services })),
        Just(Body::FeedInformationRequest),
        list(feed(), 3)
            .prop_map(|feeds| Body::FeedInformationResponse(FeedInformationResponse { feeds })),
        subscription_request().prop_map(Body::SubscriptionManagementRequest),
        subscription_response().prop_map(Body::SubscriptionManagementResponse),
        poll_request().prop_map(Body::PollRequest),
        poll_response().prop_map(Body::PollResponse),
        (token(), token(), opt(1..1000u64)).prop_map(
            |(feed_name, result_id, result_part_number)| Body::PollFulfillment(PollFulfillment {
                feed_name,
                result_id,
                result_part_number,
            })
        ),
        inbox().prop_map(Body::Inbox),
        status().prop_map(Body::Status),
        subscription_alert().prop_map(Body::SubscriptionAlert),
    ]
    .boxed()
}

fn header_name() -> BoxedStrategy<String> {
    prop_oneof![
        ("[a-z]{1,4}", ncname()).prop_map(|(ns, local)| format!("urn:{ns}#{local}")),
        ("[a-z]{1,4}", ncname()).prop_map(|(ns, local)| format!("http://{ns}.example/{local}")),
        token(),
    ]
    .boxed()
}

fn message() -> BoxedStrategy<Message> {
    let header =
        (header_name(), content()).prop_map(|(name, value)| ExtendedHeader { name, value });
    (
        message_id(),
        opt(message_id()),
        list(header, 2),
        body(),
        opt(signature()),
    )
        .prop_map(
            |(id, in_response_to, extended_headers, body, signature)| Message {
                id,
                in_response_to,
                extended_headers,
                body,
                signature,
            },
        )
        .boxed()
}

// ---- properties ----

/// A draft header element declares its own namespace; markup inside it once
/// made the reader index namespace bindings it had already dropped (a panic,
/// on input anyone can send).
#[test]
fn draft_header_with_xml_value() {
    let xml = r#"<taxii:TAXII_DiscoveryRequest xmlns:taxii="http://taxii.mitre.org/messages/xml/1" message-id="0"><taxii:extended-headers><h:a xmlns:h="urn:a"><p:e xmlns:p="urn:x">t</p:e></h:a></taxii:extended-headers></taxii:TAXII_DiscoveryRequest>"#;
    let parsed = parse(xml.as_bytes()).unwrap();
    assert_eq!(
        parsed.message.extended_headers,
        vec![ExtendedHeader {
            name: "urn:a#a".to_owned(),
            value: XmlContent::Xml(r#"<p:e xmlns:p="urn:x">t</p:e>"#.to_owned()),
        }]
    );
}

fn check(message: Message) -> Result<(), TestCaseError> {
    for to in Dialect::ALL {
        if !message.kind().exists_in(to) {
            continue;
        }
        // Some intents have no form in a dialect (a PAUSE in 1.0): nothing to send.
        let Ok(converted) = convert(message.clone(), Dialect::V11, to) else {
            continue;
        };
        let fit = converted.message;
        let written = serialize(&fit, to)
            .map_err(|e| TestCaseError::fail(format!("serialize to {to}: {e}\n{fit:#?}")))?;
        let parsed = parse(written.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("parse {to}: {e}\n{written}")))?;
        prop_assert_eq!(parsed.dialect, to);
        prop_assert_eq!(&parsed.message, &fit, "{} round trip of\n{}", to, written);

        // Converting a message already fit for a dialect changes nothing.
        let again = convert(fit.clone(), to, to)
            .map_err(|e| TestCaseError::fail(format!("reconvert to {to}: {e}")))?;
        prop_assert!(
            again.notes.is_empty(),
            "reconverting to {} noted {:?}",
            to,
            again.notes
        );
        prop_assert_eq!(&again.message, &fit);

        // What was read is written again byte for byte.
        let rewritten = serialize(&parsed.message, to)
            .map_err(|e| TestCaseError::fail(format!("serialize again to {to}: {e}")))?;
        prop_assert_eq!(rewritten, written);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn converted_messages_round_trip_in_every_dialect(message in message()) {
        check(message)?;
    }
}

/// Each message type on its own, so that rarer shapes are not starved.
macro_rules! per_kind {
    ($($name:ident => $strategy:expr;)*) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
            $(
                #[test]
                fn $name(
                    (id, headers, body) in (message_id(), list((header_name(), content()), 2), $strategy)
                ) {
                    let mut message = Message::new(id, body);
                    message.extended_headers = headers
                        .into_iter()
                        .map(|(name, value)| ExtendedHeader { name, value })
                        .collect();
                    check(message)?;
                }
            )*
        }
    };
}

per_kind! {
    discovery_responses => list(service_instance(), 3)
        .prop_map(|services| Body::DiscoveryResponse(DiscoveryResponse { services }));
    feed_information_responses => list(feed(), 3)
        .prop_map(|feeds| Body::FeedInformationResponse(FeedInformationResponse { feeds }));
    subscription_requests => subscription_request().prop_map(Body::SubscriptionManagementRequest);
    subscription_responses => subscription_response().prop_map(Body::SubscriptionManagementResponse);
    poll_requests => poll_request().prop_map(Body::PollRequest);
    poll_responses => poll_response().prop_map(Body::PollResponse);
    inbox_messages => inbox().prop_map(Body::Inbox);
    status_messages => status().prop_map(Body::Status);
    subscription_alerts => subscription_alert().prop_map(Body::SubscriptionAlert);
}
