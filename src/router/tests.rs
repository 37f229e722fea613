use super::*;
use crate::config::Config;

const GATEWAY: &str = "gw-here";
const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";
const LABEL: &str = "http://example.org/share#label";

/// The default scenario with `extra` TOML appended.
fn router(extra: &str) -> Router {
    let text = format!("{}\n{extra}", crate::config::DEFAULT_CONFIG);
    let config = Config::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
    Router::new(Arc::new(config), GATEWAY.to_owned())
}

const EGRESS: &str = r#"
[[egress]]
name = "queue"
peers = ["partner"]
[egress.amqp]
uri = "amqp://127.0.0.1"
exchange = "taxii"

[[egress]]
name = "hub"
peers = ["gw-hub"]
[egress.taxii]
url = "http://127.0.0.1:1/inbox"
dialect = "1.1"
"#;

fn envelope(label: Option<&str>, identity: Identity, hops: &[&str]) -> Envelope {
    let mut message = Message::new(
        "urn:uuid:1",
        Body::Inbox(InboxMessage {
            content_blocks: vec![ContentBlock::new(
                ContentBinding::new(STIX),
                XmlContent::Xml("<x/>".to_owned()),
            )],
            ..InboxMessage::default()
        }),
    );
    if let Some(label) = label {
        message.extended_headers.push(ExtendedHeader {
            name: LABEL.to_owned(),
            value: XmlContent::Text(label.to_owned()),
        });
    }
    Envelope {
        message,
        origin: Origin {
            adapter: "taxii_http".to_owned(),
            identity,
            binding: WireBinding::TaxiiXml(Dialect::V11),
        },
        received: Timestamp::from_unix(1_800_000_000, 0),
        relay: Relay {
            hops: hops.iter().map(|h| (*h).to_owned()).collect(),
            origin_id: None,
        },
    }
}

fn gold() -> Vec<String> {
    vec!["Gold".to_owned()]
}

fn forwarded(plan: &Plan) -> Vec<&str> {
    plan.forward.iter().map(|(name, _)| name.as_str()).collect()
}

#[test]
fn with_no_route_a_message_is_stored_in_the_hosted_feed_it_names() {
    let router = router("");
    let plan = router.route(&envelope(None, Identity::Anonymous, &[]), &gold());
    assert_eq!(plan.store, gold());
    assert!(plan.refused.is_none() && plan.forward.is_empty());

    let plan = router.route(
        &envelope(None, Identity::Anonymous, &[]),
        &["Elsewhere".to_owned()],
    );
    assert_eq!(
        plan.refused.as_deref(),
        Some("Elsewhere is not a feed hosted here")
    );
    assert!(plan.store.is_empty());

    let plan = router.route(&envelope(None, Identity::Anonymous, &[]), &[]);
    assert!(plan.refused.is_some());
}

#[test]
fn the_unrouted_policy_can_refuse_or_drop() {
    let refuse = router("[router]\nunrouted = \"refuse\"");
    let plan = refuse.route(&envelope(None, Identity::Anonymous, &[]), &gold());
    assert_eq!(plan.refused.as_deref(), Some("no route takes this message"));
    let drop = router("[router]\nunrouted = \"drop\"");
    let plan = drop.route(&envelope(None, Identity::Anonymous, &[]), &gold());
    assert!(plan.is_dropped());
}

#[test]
fn routes_match_on_a_sharing_label_and_stop_unless_told_to_continue() {
    let router = router(&format!(
        r#"{EGRESS}
[[routes]]
name = "green-out"
actions = ["store", {{ forward = "queue" }}]
[routes.match]
headers = {{ "{LABEL}" = "Green" }}
message_type = ["inbox"]

[[routes]]
name = "everything-to-hub"
actions = [{{ forward = "hub" }}]
"#
    ));
    let green = router.route(&envelope(Some("Green"), Identity::Anonymous, &[]), &gold());
    assert_eq!(green.store, gold());
    assert_eq!(forwarded(&green), ["queue"], "{:?}", green.trace);
    assert!(green.trace[0].starts_with("route green-out: taken"));

    let red = router.route(&envelope(Some("Red"), Identity::Anonymous, &[]), &gold());
    assert!(red.store.is_empty());
    assert_eq!(forwarded(&red), ["hub"]);
    assert!(
        red.trace[0].contains(&format!("header {LABEL} is Some(\"Red\")")),
        "{:?}",
        red.trace
    );
}

#[test]
fn continue_lets_later_routes_add_actions_and_drop_ends_routing() {
    let router = router(&format!(
        r#"{EGRESS}
[[routes]]
name = "keep"
actions = ["store"]
continue = true

[[routes]]
name = "no-red"
actions = ["drop"]
[routes.match]
headers = {{ "{LABEL}" = "Red" }}

[[routes]]
name = "share"
actions = [{{ forward = "queue" }}, {{ forward = "hub" }}, {{ forward = "queue" }}]
"#
    ));
    let plan = router.route(&envelope(None, Identity::Anonymous, &[]), &gold());
    assert_eq!(plan.store, gold());
    assert_eq!(forwarded(&plan), ["queue", "hub"], "each egress once");

    let red = router.route(&envelope(Some("Red"), Identity::Anonymous, &[]), &gold());
    assert_eq!(red.store, gold(), "the earlier route's store stands");
    assert!(red.forward.is_empty(), "{:?}", red.trace);
}

#[test]
fn transforms_shape_what_each_later_action_sees() {
    let router = router(&format!(
        r#"{EGRESS}
[[routes]]
name = "relabel"
actions = [
  {{ forward = "hub" }},
  {{ set_header = {{ name = "{LABEL}", value = "Amber" }} }},
  {{ strip_header = "urn:x#y" }},
  {{ rename_feed = "Partner" }},
  {{ forward = "queue" }},
  {{ store_in = "Public" }},
]
"#
    ));
    let mut incoming = envelope(Some("Green"), Identity::Anonymous, &[]);
    incoming.message.extended_headers.push(ExtendedHeader {
        name: "urn:x#y".to_owned(),
        value: XmlContent::Text("z".to_owned()),
    });
    let plan = router.route(&incoming, &gold());
    let label = |message: &Message| {
        message
            .extended_headers
            .iter()
            .find(|h| h.name == LABEL)
            .map(|h| h.value.as_str().to_owned())
    };
    let (_, to_hub) = &plan.forward[0];
    let (_, to_queue) = &plan.forward[1];
    assert_eq!(label(&to_hub.message).as_deref(), Some("Green"));
    assert_eq!(to_hub.feeds, gold());
    assert_eq!(label(&to_queue.message).as_deref(), Some("Amber"));
    assert_eq!(to_queue.feeds, ["Partner"]);
    assert!(
        !to_queue
            .message
            .extended_headers
            .iter()
            .any(|h| h.name == "urn:x#y")
    );
    assert_eq!(plan.store, ["Public"]);
}

#[test]
fn nothing_goes_back_where_it_came_from_or_around_a_loop() {
    let router = router(&format!(
        r#"{EGRESS}
[[routes]]
name = "relay"
actions = ["store", {{ forward = "queue" }}, {{ forward = "hub" }}]
"#
    ));
    // Sent by the partner: not echoed to it.
    let plan = router.route(
        &envelope(None, Identity::Named("partner".to_owned()), &[]),
        &gold(),
    );
    assert_eq!(forwarded(&plan), ["hub"]);
    // Relayed through the hub: not sent back there.
    let plan = router.route(&envelope(None, Identity::Anonymous, &["gw-hub"]), &gold());
    assert_eq!(forwarded(&plan), ["queue"]);
    let (_, outgoing) = &plan.forward[0];
    assert_eq!(
        outgoing.relay.hops,
        ["gw-hub", GATEWAY],
        "this gateway joins the record"
    );
    assert_eq!(outgoing.relay.origin_id.as_deref(), Some("urn:uuid:1"));
    // Already through this gateway: a loop, dropped whole.
    let plan = router.route(
        &envelope(None, Identity::Anonymous, &["gw-a", GATEWAY, "gw-b"]),
        &gold(),
    );
    assert!(plan.is_dropped(), "{:?}", plan.trace);
}

#[test]
fn routes_match_on_adapter_identity_binding_feed_and_content_binding() {
    let router = router(&format!(
        r#"{EGRESS}
[[routes]]
name = "narrow"
actions = [{{ forward = "hub" }}]
[routes.match]
adapter = ["taxii_http"]
binding = ["1.1"]
identity = ["demo"]
feed = ["Gold", "Silver"]
content_binding = ["{STIX}"]
"#
    ));
    let demo = Identity::Named("demo".to_owned());
    let taken = router.route(&envelope(None, demo.clone(), &[]), &gold());
    assert_eq!(forwarded(&taken), ["hub"]);
    let anonymous = router.route(&envelope(None, Identity::Anonymous, &[]), &gold());
    assert!(anonymous.forward.is_empty());
    assert!(anonymous.trace[0].contains("identity is anonymous"));
    let other_feed = router.route(&envelope(None, demo.clone(), &[]), &["Public".to_owned()]);
    assert!(other_feed.forward.is_empty());
    let mut cybox = envelope(None, demo, &[]);
    if let Body::Inbox(inbox) = &mut cybox.message.body {
        inbox.content_blocks[0].binding = ContentBinding::new("urn:cybox");
    }
    assert!(router.route(&cybox, &gold()).forward.is_empty());
}

#[test]
fn a_configuration_naming_unknown_egress_or_feeds_is_refused() {
    for bad in [
        "[[routes]]\nname = \"r\"\nactions = [{ forward = \"nowhere\" }]",
        "[[routes]]\nname = \"r\"\nactions = [{ store_in = \"Nowhere\" }]",
        "[[routes]]\nname = \"r\"\nactions = []",
        "[[egress]]\nname = \"e\"",
        "[[egress]]\nname = \"e\"\n[egress.amqp]\nuri = \"amqp://h\"\nexchange = \"x\"\nrouting_key = \"{nope}\"",
    ] {
        let text = format!("{}\n{bad}", crate::config::DEFAULT_CONFIG);
        assert!(Config::from_toml(&text).is_err(), "{bad}");
    }
}

#[test]
fn routes_can_take_only_what_this_gateways_own_users_send() {
    let router = router(&format!(
        r#"{EGRESS}
[[routes]]
name = "own"
actions = ["store", {{ forward = "queue" }}]
[routes.match]
relayed = false
"#
    ));
    let own = router.route(&envelope(None, Identity::Anonymous, &[]), &gold());
    assert_eq!(forwarded(&own), ["queue"]);
    let relayed = router.route(&envelope(None, Identity::Anonymous, &["gw-b"]), &gold());
    assert!(relayed.forward.is_empty());
    assert!(
        relayed.trace[0].contains("it was relayed through [\"gw-b\"]"),
        "{:?}",
        relayed.trace
    );
    assert_eq!(relayed.store, gold(), "unrouted: stored");
}
