//! Cross-check with libtaxii 1.1.119, the reference TAXII 1.x implementation,
//! through tests/peers/libtaxii_check.py (run with the `.peers` venv that
//! `scripts/setup` installs).
//!
//! - libtaxii reads what we write: every 1.0 and 1.1 message we write (the
//!   examples, and every example converted to 1.0 and 1.1) is parsed by
//!   libtaxii, whose field values must be ours, and written again by it; we
//!   parse its output back to a message equal to the one we wrote.
//! - We read what libtaxii writes: one message of every 1.0 and 1.1 type built
//!   with libtaxii's constructors parses to a message with its field values.

mod common;

use common::examples;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use taxiway::bindings::taxii_xml::{SerializeError, convert, ids, parse, serialize};
use taxiway::core::*;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the libtaxii helper once on a directory; returns its summaries by
/// file name.
fn libtaxii(mode: &str, dir: &Path) -> BTreeMap<String, Value> {
    let python = manifest().join(".peers/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup to install the Python peers (libtaxii)",
        python.display()
    );
    let output = Command::new(&python)
        .arg(manifest().join("tests/peers/libtaxii_check.py"))
        .arg(mode)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/setup", python.display()));
    assert!(
        output.status.success(),
        "libtaxii_check.py {mode} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("libtaxii_check.py printed no JSON")
}

// ---- The summary: the fields libtaxii_check.py reports, from our model. ----

fn micros(timestamp: Option<&Timestamp>) -> Value {
    timestamp.map_or(Value::Null, |t| json!(t.unix_nanos() / 1000))
}

/// A 1.0 inclusive begin label: our exclusive bound is 1 µs before it.
fn inclusive_micros(exclusive: Option<&Timestamp>) -> Value {
    exclusive.map_or(Value::Null, |t| json!(t.unix_nanos() / 1000 + 1))
}

/// The `id="..."` attribute values in a payload, in order.
fn id_attributes(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("id=\"") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + 4..];
        if before.is_some_and(char::is_whitespace) {
            let end = rest.find('"').unwrap_or(rest.len());
            found.push(rest[..end].to_owned());
        }
    }
    found
}

fn xml_text(content: &XmlContent) -> Value {
    match content {
        XmlContent::Text(text) => json!(text),
        XmlContent::Xml(_) => json!("<xml>"),
    }
}

fn binding_ids(bindings: &[ContentBinding]) -> Vec<&str> {
    bindings.iter().map(|b| b.id.as_str()).collect()
}

fn addresses(endpoints: &[Endpoint]) -> Vec<Option<&str>> {
    endpoints.iter().map(|e| e.address.as_deref()).collect()
}

fn response_type(selection: &SubscriptionParameters) -> &'static str {
    match selection.response_type.unwrap_or(ResponseType::Full) {
        ResponseType::Full => "FULL",
        ResponseType::CountOnly => "COUNT_ONLY",
    }
}

fn push_address(delivery: Option<&Delivery>) -> Option<&str> {
    match delivery {
        Some(Delivery::Push(push)) => Some(&push.address),
        _ => None,
    }
}

fn blocks(blocks: &[ContentBlock]) -> Value {
    blocks
        .iter()
        .map(|b| {
            json!({
                "binding": b.binding.id,
                "subtypes": b.binding.subtypes,
                "label": micros(b.timestamp_label.as_ref()),
                "message": b.message,
                "padding": b.padding,
                "xml": matches!(b.content, XmlContent::Xml(_)),
                "ids": id_attributes(b.content.as_str()),
            })
        })
        .collect()
}

fn message_type(kind: MessageKind, v11: bool) -> &'static str {
    match kind {
        MessageKind::DiscoveryRequest => "Discovery_Request",
        MessageKind::DiscoveryResponse => "Discovery_Response",
        MessageKind::FeedInformationRequest if v11 => "Collection_Information_Request",
        MessageKind::FeedInformationRequest => "Feed_Information_Request",
        MessageKind::FeedInformationResponse if v11 => "Collection_Information_Response",
        MessageKind::FeedInformationResponse => "Feed_Information_Response",
        MessageKind::SubscriptionManagementRequest => "Subscription_Management_Request",
        MessageKind::SubscriptionManagementResponse => "Subscription_Management_Response",
        MessageKind::PollRequest => "Poll_Request",
        MessageKind::PollResponse => "Poll_Response",
        MessageKind::PollFulfillment => "Poll_Fulfillment",
        MessageKind::Inbox => "Inbox_Message",
        MessageKind::Status => "Status_Message",
        MessageKind::SubscriptionAlert => unreachable!("draft only"),
    }
}

/// Our message's fields in the keys and forms of libtaxii_check.py's summary.
fn summary(message: &Message, dialect: Dialect) -> Value {
    let ids = ids();
    let v11 = dialect == Dialect::V11;
    let mut s = json!({
        "type": message_type(message.kind(), v11),
        "id": message.id,
        "in_response_to": message.in_response_to,
        "headers": message
            .extended_headers
            .iter()
            .map(|h| (h.name.clone(), xml_text(&h.value)))
            .collect::<serde_json::Map<_, _>>(),
    });
    let more = match &message.body {
        Body::DiscoveryRequest | Body::FeedInformationRequest => json!({}),
        Body::DiscoveryResponse(response) => json!({
            "services": response.services.iter().map(|i| json!({
                "type": ids.service_type_wire(dialect, &i.service_type),
                "version": ids.services_version_wire(&i.version),
                "protocol": ids.protocol_wire(dialect, &i.protocol),
                "address": i.address,
                "bindings": i.message_bindings.iter().map(|b| ids.message_binding_wire(b)).collect::<Vec<_>>(),
                "contents": binding_ids(&i.content_bindings),
                "available": i.available,
                "message": i.message,
                "queries": i.supported_queries.iter().map(|q| q.format_id.as_str()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
        Body::FeedInformationResponse(response) => json!({
            "collections": response.feeds.iter().map(|f| json!({
                "name": f.name,
                "description": f.description,
                "collection_type": f.collection_type.map(|t| match t {
                    CollectionType::DataFeed => "DATA_FEED",
                    CollectionType::DataSet => "DATA_SET",
                }),
                "available": f.available,
                "volume": f.volume,
                "contents": binding_ids(&f.content_bindings),
                "push": f.push_methods.iter().map(|p| json!([
                    ids.protocol_wire(dialect, &p.protocol),
                    p.message_bindings.iter().map(|b| ids.message_binding_wire(b)).collect::<Vec<_>>(),
                ])).collect::<Vec<_>>(),
                "polling": addresses(&f.polling_services),
                "subscription": addresses(&f.subscription_services),
                "inboxes": f.receiving_inboxes.iter().map(|i| i.endpoint.address.as_deref()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        }),
        Body::SubscriptionManagementRequest(request) => {
            let selection = request.parameters.as_ref().filter(|_| v11);
            // libtaxii gives a 1.1 request default parameters when it has none.
            let default = SubscriptionParameters::default();
            json!({
                "name": request.feed_name,
                "action": ids.subscription_action_wire(dialect, request.action),
                "subscription_id": request.subscription_id,
                "push_address": push_address(request.delivery.as_ref()),
                "response_type": v11.then(|| response_type(selection.unwrap_or(&default))),
                "contents": selection.map_or(vec![], |p| binding_ids(&p.content_bindings)),
            })
        }
        Body::SubscriptionManagementResponse(response) => json!({
            "name": response.feed_name,
            "message": response.message,
            "subscriptions": response.subscriptions.iter().map(|r| json!({
                "id": r.id,
                "status": v11.then(|| match r.status.unwrap_or(SubscriptionStatus::Active) {
                    SubscriptionStatus::Active => "ACTIVE",
                    SubscriptionStatus::Paused => "PAUSED",
                    SubscriptionStatus::Unsubscribed => "UNSUBSCRIBED",
                }),
                "push_address": push_address(r.delivery.as_ref()),
                "polls": addresses(&r.poll_instances),
            })).collect::<Vec<_>>(),
        }),
        Body::PollRequest(request) => {
            let parameters = request.parameters.as_ref();
            json!({
                "name": request.feed_name,
                "begin": micros(request.exclusive_begin.as_ref()),
                "end": micros(request.inclusive_end.as_ref()),
                "subscription_id": request.subscription_id,
                "response_type": parameters.filter(|_| v11).map(|p| response_type(&p.selection)),
                "allow_asynch": parameters.filter(|_| v11).map(|p| p.allow_asynch.unwrap_or(false)),
                "contents": parameters.map_or(vec![], |p| binding_ids(&p.selection.content_bindings)),
            })
        }
        Body::PollResponse(response) => {
            let mut r = json!({
                "name": response.feed_name,
                "end": micros(response.inclusive_end.as_ref()),
                "subscription_id": response.subscription_id,
                "message": response.message,
                "blocks": blocks(&response.content_blocks),
            });
            let extra = if v11 {
                json!({
                    "begin": micros(response.exclusive_begin.as_ref()),
                    "more": response.more.unwrap_or(false),
                    "result_id": response.result_id,
                    "part": response.result_part_number.unwrap_or(1),
                    "record_count": response.record_count.map(|c| c.count),
                    "partial": response.record_count.map(|c| c.partial.unwrap_or(false)),
                })
            } else {
                json!({ "begin_inclusive": inclusive_micros(response.exclusive_begin.as_ref()) })
            };
            merge(&mut r, extra);
            r
        }
        Body::PollFulfillment(fulfillment) => json!({
            "name": fulfillment.feed_name,
            "result_id": fulfillment.result_id,
            "part": fulfillment.result_part_number.unwrap_or(1),
        }),
        Body::Inbox(inbox) => {
            let source = inbox.source_subscription.as_ref().map(|source| {
                let mut value = json!({
                    "name": source.feed_name,
                    "subscription_id": source.subscription_id,
                    "end": micros(source.inclusive_end.as_ref()),
                });
                let begin = if v11 {
                    json!({ "begin": micros(source.exclusive_begin.as_ref()) })
                } else {
                    json!({ "begin_inclusive": inclusive_micros(source.exclusive_begin.as_ref()) })
                };
                merge(&mut value, begin);
                value
            });
            let mut r = json!({
                "message": inbox.message,
                "blocks": blocks(&inbox.content_blocks),
                "source": source,
            });
            if v11 {
                merge(
                    &mut r,
                    json!({
                        "result_id": inbox.result_id,
                        "destinations": inbox.destination_feeds,
                        "record_count": inbox.record_count.map(|c| c.count),
                    }),
                );
            }
            r
        }
        Body::Status(status) => {
            let wire = ids
                .status_type_wire(dialect, &status.status_type)
                .unwrap_or(status.status_type.name());
            let mut r = json!({ "status_type": wire, "message": status.message });
            if v11 {
                let mut details = serde_json::Map::new();
                for detail in &status.details {
                    let values = details.entry(detail.name.clone()).or_insert(json!([]));
                    values
                        .as_array_mut()
                        .unwrap()
                        .push(json!(detail.value.as_str()));
                }
                merge(&mut r, json!({ "details": details }));
            } else {
                merge(&mut r, json!({ "detail_text": status.detail_text }));
            }
            r
        }
        Body::SubscriptionAlert(_) => unreachable!("draft only"),
    };
    merge(&mut s, more);
    s
}

fn merge(into: &mut Value, from: Value) {
    let into = into.as_object_mut().unwrap();
    for (key, value) in from.as_object().unwrap() {
        into.insert(key.clone(), value.clone());
    }
}

fn tag(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Draft => "draft",
        Dialect::V10 => "10",
        Dialect::V11 => "11",
    }
}

/// Every example, in its own dialect or converted, that `target` can carry.
fn messages_in(target: Dialect) -> Vec<(String, Message)> {
    let mut messages = Vec::new();
    for (folder, dialect) in [
        ("taxii-1.0", Dialect::V10),
        ("taxii-1.1", Dialect::V11),
        ("seed", Dialect::Draft),
    ] {
        for path in examples(folder) {
            let bytes = std::fs::read(&path).unwrap();
            let parsed = parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let kind = parsed.message.kind();
            let message = if dialect == target {
                parsed.message
            } else {
                match convert(parsed.message, dialect, target) {
                    Ok(conversion) => conversion.message,
                    Err(SerializeError::NoSuchMessage { .. }) if !kind.exists_in(target) => {
                        continue;
                    }
                    // 1.0 has no PAUSE or RESUME.
                    Err(SerializeError::Inexpressible { .. })
                        if target == Dialect::V10
                            && kind == MessageKind::SubscriptionManagementRequest =>
                    {
                        continue;
                    }
                    Err(e) => panic!("{} to {target}: {e}", path.display()),
                }
            };
            let stem = path.file_stem().unwrap().to_string_lossy();
            messages.push((format!("{}-{}-{stem}", tag(target), tag(dialect)), message));
        }
    }
    messages
}

/// The lines where two renderings part, or both whole if their shapes differ.
fn difference(ours: &str, theirs: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), theirs.lines().collect());
    if a.len() != b.len() {
        return format!("ours: {ours}\nfrom libtaxii: {theirs}");
    }
    a.iter()
        .zip(&b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(line, (x, y))| format!("line {line}: ours {}, libtaxii's {}", x.trim(), y.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A message with the schema defaults that libtaxii writes out explicitly
/// (`more="false"`, `Response_Type` FULL, ...) filled in, and the whitespace
/// between the elements of a query dropped (libtaxii rebuilds queries from
/// its objects, unindented).
fn normalized(mut message: Message) -> Message {
    fn selection(parameters: &mut SubscriptionParameters) {
        parameters.response_type.get_or_insert(ResponseType::Full);
        if let Some(query) = &mut parameters.query {
            squeeze(&mut query.content);
        }
    }
    fn squeeze(content: &mut XmlContent) {
        if let XmlContent::Xml(xml) = content {
            let mut out = String::with_capacity(xml.len());
            let mut rest = xml.as_str();
            while let Some(at) = rest.find('>') {
                out.push_str(&rest[..=at]);
                rest = &rest[at + 1..];
                let trimmed = rest.trim_start();
                if trimmed.starts_with('<') {
                    rest = trimmed;
                }
            }
            out.push_str(rest);
            *xml = out;
        }
    }
    fn count(count: &mut Option<RecordCount>) {
        if let Some(count) = count {
            count.partial.get_or_insert(false);
        }
    }
    match &mut message.body {
        Body::DiscoveryResponse(response) => {
            for query in response
                .services
                .iter_mut()
                .flat_map(|s| &mut s.supported_queries)
            {
                squeeze(&mut query.content);
            }
        }
        Body::SubscriptionManagementRequest(request) => {
            request.parameters.as_mut().map(selection);
        }
        Body::SubscriptionManagementResponse(response) => {
            for record in &mut response.subscriptions {
                record.status.get_or_insert(SubscriptionStatus::Active);
                record.parameters.as_mut().map(selection);
            }
        }
        Body::PollRequest(request) => {
            if let Some(parameters) = &mut request.parameters {
                parameters.allow_asynch.get_or_insert(false);
                selection(&mut parameters.selection);
            }
        }
        Body::PollResponse(response) => {
            response.more.get_or_insert(false);
            response.result_part_number.get_or_insert(1);
            count(&mut response.record_count);
        }
        Body::Inbox(inbox) => count(&mut inbox.record_count),
        _ => {}
    }
    message
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap()
}

#[test]
fn libtaxii_reads_what_we_write() {
    let dir = common::temp_dir("libtaxii-reads");
    let mut written = BTreeMap::new();
    for dialect in [Dialect::V10, Dialect::V11] {
        for (name, message) in messages_in(dialect) {
            let xml =
                serialize(&message, dialect).unwrap_or_else(|e| panic!("{name} in {dialect}: {e}"));
            std::fs::write(dir.join(format!("{name}.xml")), &xml).unwrap();
            written.insert(format!("{name}.xml"), (dialect, message, xml));
        }
    }
    // 12 + 15 + 9 in 1.0 (no fulfillment, no PAUSE), 12 + 17 + 9 in 1.1.
    assert_eq!(written.len(), 36 + 38);
    let reports = libtaxii("read", &dir);
    let mut failures = Vec::new();
    for (file, (dialect, message, xml)) in &written {
        let Some(report) = reports.get(file) else {
            failures.push(format!("{file}: libtaxii_check.py did not report it"));
            continue;
        };
        if let Some(error) = report.get("error") {
            failures.push(format!(
                "{file}: libtaxii cannot read it:\n{}\n{xml}",
                error.as_str().unwrap_or_default()
            ));
            continue;
        }
        let ours = summary(message, *dialect);
        if report != &ours {
            failures.push(format!(
                "{file}: libtaxii read other values\nlibtaxii: {}\nours: {}\n{xml}",
                pretty(report),
                pretty(&ours)
            ));
            continue;
        }
        let theirs_path = dir.join(file.replace(".xml", ".libtaxii.xml"));
        let theirs = std::fs::read(&theirs_path).unwrap();
        match parse(&theirs) {
            Ok(parsed)
                if parsed.dialect == *dialect
                    && normalized(parsed.message.clone()) == normalized(message.clone()) => {}
            Ok(parsed) => failures.push(format!(
                "{file}: libtaxii's rewrite parses to another message\n{}\n{}",
                difference(&format!("{message:#?}"), &format!("{:#?}", parsed.message)),
                String::from_utf8_lossy(&theirs)
            )),
            Err(e) => failures.push(format!(
                "{file}: we cannot read libtaxii's rewrite: {e}\n{}",
                String::from_utf8_lossy(&theirs)
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} messages:\n\n{}",
        failures.len(),
        written.len(),
        failures.join("\n\n")
    );
}

#[test]
fn we_read_what_libtaxii_writes() {
    let dir = common::temp_dir("libtaxii-writes");
    let reports = libtaxii("build", &dir);
    let mut covered: Vec<(Dialect, MessageKind)> = Vec::new();
    let mut failures = Vec::new();
    for (file, report) in &reports {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).unwrap();
        let xml = String::from_utf8_lossy(&bytes);
        let parsed = match parse(&bytes) {
            Ok(parsed) => parsed,
            Err(e) => {
                failures.push(format!("{file}: {e}\n{xml}"));
                continue;
            }
        };
        let dialect = if file.starts_with("10-") {
            Dialect::V10
        } else {
            Dialect::V11
        };
        assert_eq!(parsed.dialect, dialect, "{file}");
        let kind = parsed.message.kind();
        covered.push((dialect, kind));
        let mut expected = report.clone();
        let built_as = expected.as_object_mut().unwrap().remove("kind");
        let ours = summary(&parsed.message, dialect);
        if ours != expected {
            failures.push(format!(
                "{file} ({}): we read other values\nlibtaxii: {}\nours: {}\n{xml}",
                built_as.unwrap_or_default(),
                pretty(&expected),
                pretty(&ours)
            ));
        }
        // And what we read, we write again to the same message.
        let again = serialize(&parsed.message, dialect).unwrap();
        assert_eq!(
            parse(again.as_bytes()).unwrap().message,
            parsed.message,
            "{file}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} libtaxii messages:\n\n{}",
        failures.len(),
        reports.len(),
        failures.join("\n\n")
    );
    for dialect in [Dialect::V10, Dialect::V11] {
        for kind in MessageKind::ALL {
            assert_eq!(
                covered.contains(&(dialect, kind)),
                kind.exists_in(dialect),
                "libtaxii built no {dialect} {kind}"
            );
        }
    }
    assert_eq!(covered.len(), 10 + 11);
}
