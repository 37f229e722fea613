use super::*;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn limits() -> Limits {
    Limits::default()
}

fn info(term: &str) -> Category {
    Category {
        scheme: Some(INFORMATION_TYPE_SCHEME.to_owned()),
        term: term.to_owned(),
        label: None,
    }
}

fn link(rel: &str, href: &str) -> Link {
    Link {
        rel: rel.to_owned(),
        href: href.to_owned(),
        media_type: None,
        title: None,
    }
}

fn full_entry(id: &str, updated: &str) -> Entry {
    let mappings = rolie_mappings();
    let iodef = mappings
        .binding("urn:ietf:params:xml:ns:iodef-2.0")
        .unwrap();
    Entry {
        id: id.to_owned(),
        title: "Incident <42> & \"friends\"".to_owned(),
        updated: ts(updated),
        published: Some(ts("2024-01-01T00:00:00Z")),
        information_type: iodef.information_type.clone(),
        categories: vec![Category {
            scheme: Some("urn:example:tlp".to_owned()),
            term: "amber".to_owned(),
            label: Some("TLP <AMBER>".to_owned()),
        }],
        content: OutOfLine {
            media_type: iodef.media_type.clone(),
            src: "https://gw.example/rolie/c/1/content?a=1&b=2".to_owned(),
        },
        links: vec![
            link("related", "https://gw.example/x?\"q\""),
            link("indicators", "https://gw.example/ind"),
        ],
        collections: vec!["https://gw.example/rolie/incidents".to_owned()],
        format: iodef.format.clone(),
        properties: vec![
            Property {
                name: CSIRT_ID_PROPERTY.to_owned(),
                value: "csirt.example.com189493".to_owned(),
            },
            Property {
                name: "urn:ietf:params:rolie:property:local:note".to_owned(),
                value: "a < b & c > \"d\"\ttab\nline".to_owned(),
            },
        ],
    }
}

fn incoming_of(entry: &Entry, standalone: bool) -> IncomingEntry {
    IncomingEntry {
        id: Some(entry.id.clone()),
        title: entry.title.clone(),
        updated: Some(entry.updated),
        published: entry.published,
        information_type: standalone.then(|| entry.information_type.clone()),
        categories: entry.categories.clone(),
        links: entry
            .links
            .iter()
            .cloned()
            .chain(
                entry
                    .collections
                    .iter()
                    .filter(|_| standalone)
                    .map(|href| link("collection", href)),
            )
            .collect(),
        format: entry.format.clone(),
        properties: entry.properties.clone(),
        content: IncomingContent::OutOfLine {
            media_type: Some(entry.content.media_type.clone()),
            src: entry.content.src.clone(),
        },
    }
}

#[test]
fn default_mappings_go_both_ways() {
    let m = rolie_mappings();
    let stix = m.binding("urn:stix.mitre.org:xml:1.1.1").unwrap();
    assert_eq!(stix.information_type, "indicator");
    assert_eq!(stix.media_type, "application/xml");
    let format = stix.format.as_ref().unwrap();
    assert_eq!(format.ns, "http://stix.mitre.org/stix-1");
    assert_eq!(
        m.binding_of(Some("application/xml"), Some(format)),
        Some("urn:stix.mitre.org:xml:1.1.1")
    );
    let iodef1 = m.binding("urn:ietf:params:xml:ns:iodef-1.0").unwrap();
    assert_eq!(iodef1.information_type, "incident");
    let bare_iodef1 = Format {
        ns: "urn:ietf:params:xml:ns:iodef-1.0".to_owned(),
        version: None,
        schema_location: None,
        schema_type: None,
    };
    assert_eq!(
        m.binding_of(None, Some(&bare_iodef1)),
        Some("urn:ietf:params:xml:ns:iodef-1.0")
    );
    let iodef2 = m.binding("urn:ietf:params:xml:ns:iodef-2.0").unwrap();
    assert_eq!(
        iodef2.format.as_ref().unwrap().schema_location.as_deref(),
        Some("https://www.iana.org/assignments/xml-registry/schema/iodef-2.0.xsd")
    );
    assert_eq!(
        m.binding_of(Some("application/stix+json; version=2.1"), None),
        Some("urn:stix.mitre.org:json:2.1")
    );
    // Several bindings share application/xml: the media type alone decides nothing.
    assert_eq!(m.binding_of(Some("application/xml"), None), None);
    let stix1_unknown_version = Format {
        version: Some("9.9".to_owned()),
        ..format.clone()
    };
    assert_eq!(m.binding_of(None, Some(&stix1_unknown_version)), None);
    assert_eq!(m.information_type("Incident"), Some("incident"));
    assert_eq!(m.information_type("nonsense"), None);
}

#[test]
fn mappings_are_validated() {
    let base = "information_types = [\"indicator\"]\n";
    let binding = |info: &str, media: &str| {
        format!(
            "{base}[[bindings]]\ncontent_binding = \"urn:x\"\nmedia_type = \"{media}\"\ninformation_type = \"{info}\"\n"
        )
    };
    assert!(RolieMappings::from_toml(&binding("indicator", "application/xml")).is_ok());
    let unknown = RolieMappings::from_toml(&binding("incident", "application/xml")).unwrap_err();
    assert!(unknown.contains("not in information_types"), "{unknown}");
    let media = RolieMappings::from_toml(&binding("indicator", "xml")).unwrap_err();
    assert!(media.contains("type/subtype"), "{media}");
    let twice = format!(
        "{}[[bindings]]\ncontent_binding = \"urn:x\"\nmedia_type = \"a/b\"\ninformation_type = \"indicator\"\n",
        binding("indicator", "a/b")
    );
    assert!(
        RolieMappings::from_toml(&twice)
            .unwrap_err()
            .contains("twice")
    );
    assert!(RolieMappings::from_toml(&format!("{base}typo = 1\n")).is_err());
}

#[test]
fn feed_round_trips_with_paging_links() {
    let page = FeedPage {
        id: "urn:uuid:feed-1".to_owned(),
        title: "Incidents & <friends>".to_owned(),
        updated: ts("2024-03-01T12:00:00.5Z"),
        information_type: "incident".to_owned(),
        categories: vec![
            Category {
                scheme: Some(IODEF_PURPOSE_SCHEME.to_owned()),
                term: "mitigation".to_owned(),
                label: None,
            },
            Category {
                scheme: Some(IODEF_RESTRICTION_SCHEME.to_owned()),
                term: "need-to-know".to_owned(),
                label: None,
            },
        ],
        service: "https://gw.example/rolie/servicedocument".to_owned(),
        links: vec![
            link("self", "https://gw.example/rolie/incidents?page=2"),
            link("first", "https://gw.example/rolie/incidents"),
            link("previous", "https://gw.example/rolie/incidents?page=1&x=1"),
            link("next", "https://gw.example/rolie/incidents?page=3"),
            link("last", "https://gw.example/rolie/incidents?page=9"),
        ],
        entries: vec![
            full_entry("urn:uuid:e2", "2024-03-01T12:00:00Z"),
            full_entry("urn:uuid:e1", "2024-02-01T12:00:00+02:00"),
        ],
    };
    let xml = feed(&page);
    let read = read_feed(xml.as_bytes(), &limits(), rolie_mappings()).unwrap();
    assert_eq!(read.id.as_deref(), Some("urn:uuid:feed-1"));
    assert_eq!(read.title, page.title);
    assert_eq!(read.updated, Some(page.updated));
    assert_eq!(read.information_type.as_deref(), Some("incident"));
    assert_eq!(read.categories, page.categories);
    assert_eq!(read.link("service"), Some(page.service.as_str()));
    assert_eq!(
        read.link("previous"),
        Some("https://gw.example/rolie/incidents?page=1&x=1")
    );
    assert_eq!(
        read.link("next"),
        Some("https://gw.example/rolie/incidents?page=3")
    );
    let expected: Vec<IncomingEntry> = page.entries.iter().map(|e| incoming_of(e, false)).collect();
    assert_eq!(read.entries, expected);
}

#[test]
fn standalone_entry_round_trips_every_field() {
    let original = full_entry("urn:uuid:e1", "2024-02-01T12:00:00Z");
    let xml = entry(&original, true);
    assert!(xml.contains("rel=\"collection\""));
    let read = read_entry(xml.as_bytes(), &limits(), rolie_mappings()).unwrap();
    assert_eq!(read, incoming_of(&original, true));
}

#[test]
fn an_entry_to_post_carries_its_content_inline() {
    let original = full_entry("urn:uuid:e2", "2024-02-01T12:00:00Z");
    let payload = "<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" \
                   id=\"example:p-1\" version=\"1.1.1\"><stix:Title>a &amp; b</stix:Title>\
                   </stix:STIX_Package>";
    let xml = entry_to_post(&original, &crate::core::XmlContent::Xml(payload.to_owned()));
    let read = read_entry(xml.as_bytes(), &limits(), rolie_mappings()).unwrap();
    assert_eq!(
        read.content,
        IncomingContent::Xml {
            media_type: original.content.media_type.clone(),
            xml: payload.to_owned()
        }
    );
    let text = entry_to_post(
        &original,
        &crate::core::XmlContent::Text("<not markup> & more".into()),
    );
    let read = read_entry(text.as_bytes(), &limits(), rolie_mappings()).unwrap();
    assert!(
        matches!(&read.content, IncomingContent::Xml { xml, .. } | IncomingContent::Text { text: xml, .. } if xml.contains("<not markup> & more")),
        "{:?}",
        read.content
    );
}

#[test]
fn service_document_round_trips() {
    let document = ServiceDocument {
        workspaces: vec![
            Workspace {
                title: "Public & <open>".to_owned(),
                collections: vec![Collection {
                    href: "https://gw.example/rolie/indicators?x=1&y=\"2\"".to_owned(),
                    title: "Indicators".to_owned(),
                    accept: vec![ENTRY_MEDIA_TYPE.to_owned()],
                    information_type: Some("indicator".to_owned()),
                    categories: vec![Category {
                        scheme: Some("urn:example:sector".to_owned()),
                        term: "energy".to_owned(),
                        label: None,
                    }],
                    category_document: Some("https://gw.example/rolie/indicators/cats".to_owned()),
                    service: Some("https://gw.example/rolie/servicedocument".to_owned()),
                }],
            },
            Workspace {
                title: "Private Consortium Sharing".to_owned(),
                collections: vec![Collection {
                    href: "https://gw.example/rolie/incidents".to_owned(),
                    title: "Incidents".to_owned(),
                    accept: vec![String::new()],
                    information_type: Some("incident".to_owned()),
                    categories: Vec::new(),
                    category_document: None,
                    service: None,
                }],
            },
        ],
    };
    let xml = service_document(&document);
    assert!(xml.contains("<categories fixed=\"yes\">"));
    assert!(xml.contains("<accept></accept>"));
    let read = read_service_document(xml.as_bytes(), &limits()).unwrap();
    assert_eq!(read, document);
}

#[test]
fn category_document_is_fixed_and_escaped() {
    let xml = category_document(&[info("incident"), info("in\"dic<ator&")]);
    assert!(xml.contains("fixed=\"yes\""));
    assert!(xml.contains("term=\"in&quot;dic&lt;ator&amp;\""));
    // Its categories read back through a collection that embeds them.
    let body = xml
        .split_once("?>\n")
        .unwrap()
        .1
        .replace(" xmlns=\"http://www.w3.org/2007/app\"", "")
        .replace(" xmlns:atom=\"http://www.w3.org/2005/Atom\"", "");
    let service = format!(
        "<service xmlns=\"http://www.w3.org/2007/app\" xmlns:atom=\"http://www.w3.org/2005/Atom\"><workspace><atom:title>w</atom:title><collection href=\"c\"><atom:title>c</atom:title>{body}</collection></workspace></service>"
    );
    let error = read_service_document(service.as_bytes(), &limits()).unwrap_err();
    assert_eq!(error, RolieError::SeveralInformationTypes);
}

#[test]
fn hostile_text_is_escaped_and_kept() {
    let mut hostile = full_entry("urn:uuid:<&\">", "2024-02-01T12:00:00Z");
    hostile.title = "</title><script>&amp;\"'\u{1}\u{FFFF}".to_owned();
    hostile.content.src = "x\" onload=\"y&z<".to_owned();
    let xml = entry(&hostile, true);
    let read = read_entry(xml.as_bytes(), &limits(), rolie_mappings()).unwrap();
    assert_eq!(read.id.as_deref(), Some("urn:uuid:<&\">"));
    // Characters XML cannot carry are replaced; everything else survives.
    assert_eq!(read.title, "</title><script>&amp;\"'\u{FFFD}\u{FFFD}");
    assert_eq!(
        read.content,
        IncomingContent::OutOfLine {
            media_type: Some("application/xml".to_owned()),
            src: "x\" onload=\"y&z<".to_owned(),
        }
    );
    let feed_xml = feed(&FeedPage {
        id: "<".to_owned(),
        title: "&".to_owned(),
        updated: ts("2024-01-01T00:00:00"),
        information_type: "incident".to_owned(),
        categories: Vec::new(),
        service: "\"".to_owned(),
        links: Vec::new(),
        entries: vec![hostile],
    });
    let read = read_feed(feed_xml.as_bytes(), &limits(), rolie_mappings()).unwrap();
    assert_eq!(read.link("service"), Some("\""));
    // A time without a zone is written as UTC, as RFC 3339 needs a zone.
    assert!(feed_xml.contains("<updated>2024-01-01T00:00:00Z</updated>"));
}

const STIX: &str = r#"<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" xmlns:ex="urn:ex" version="1.2"><stix:Indicators><ex:x xsi:type="ex:Thing"/></stix:Indicators></stix:STIX_Package>"#;

#[test]
fn reads_other_prefixes_https_namespaces_and_inline_xml() {
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<a:entry xmlns:a="https://www.w3.org/2005/Atom" xmlns:r="urn:ietf:params:xml:ns:rolie:1.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <a:title type="text">Posted</a:title>
  <a:category scheme="urn:ietf:params:rolie:category:information-type" term="INDICATOR"/>
  <a:link rel="prev" href="p"/>
  <a:link href="alt"/>
  <r:format ns="http://stix.mitre.org/stix-1" version="1.2"/>
  <r:property name="urn:ietf:params:rolie:property:content-id" value="42"/>
  <unknown xmlns="urn:other"><a:content>not this one</a:content></unknown>
  <a:content type="application/xml">
    {STIX}
  </a:content>
</a:entry>"#
    );
    let read = read_entry(body.as_bytes(), &limits(), rolie_mappings()).unwrap();
    assert_eq!(read.id, None);
    assert_eq!(read.title, "Posted");
    assert_eq!(read.information_type.as_deref(), Some("indicator"));
    assert_eq!(
        read.links,
        vec![link("previous", "p"), link("alternate", "alt")]
    );
    assert_eq!(read.properties[0].value, "42");
    assert_eq!(
        rolie_mappings().binding_of(Some("application/xml"), read.format.as_ref()),
        Some("urn:stix.mitre.org:xml:1.2")
    );
    // The payload is lifted byte for byte, with the xsi binding it inherited.
    let expected = STIX.replacen(
        " version=\"1.2\">",
        " version=\"1.2\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">",
        1,
    );
    assert_eq!(
        read.content,
        IncomingContent::Xml {
            media_type: "application/xml".to_owned(),
            xml: expected,
        }
    );

    // A default Atom namespace declared on the entry and inherited by an XML payload.
    let body = r#"<entry xmlns="http://www.w3.org/2005/Atom"><title>t</title><content type="text/xml"><Thing><Part/></Thing></content></entry>"#;
    let read = read_entry(body.as_bytes(), &limits(), rolie_mappings()).unwrap();
    assert_eq!(
        read.content,
        IncomingContent::Xml {
            media_type: "text/xml".to_owned(),
            xml: r#"<Thing xmlns="http://www.w3.org/2005/Atom"><Part/></Thing>"#.to_owned(),
        }
    );

    let json = r#"<entry xmlns="http://www.w3.org/2005/Atom"><content type="application/stix+json;version=2.1">{"type":"bundle","a":"&lt;&amp;"}</content></entry>"#;
    let read = read_entry(json.as_bytes(), &limits(), rolie_mappings()).unwrap();
    assert_eq!(
        read.content,
        IncomingContent::Text {
            media_type: "application/stix+json;version=2.1".to_owned(),
            text: r#"{"type":"bundle","a":"<&"}"#.to_owned(),
        }
    );
}

#[test]
fn reads_a_prefixed_https_feed_and_service_document() {
    let body = r#"<atom:feed xmlns:atom="https://www.w3.org/2005/Atom">
  <atom:id>f</atom:id><atom:title>F</atom:title><atom:updated>2024-01-01T00:00:00Z</atom:updated>
  <atom:link rel="service" href="s"/><atom:link rel="next" href="n"/>
  <atom:category scheme="urn:ietf:params:rolie:category:information-type" term="incident"/>
  <atom:entry><atom:id>e</atom:id><atom:content src="c" /></atom:entry>
</atom:feed>"#;
    let read = read_feed(body.as_bytes(), &limits(), rolie_mappings()).unwrap();
    assert_eq!(read.link("next"), Some("n"));
    assert_eq!(read.entries.len(), 1);
    assert_eq!(
        read.entries[0].content,
        IncomingContent::OutOfLine {
            media_type: None,
            src: "c".to_owned()
        }
    );

    let body = r#"<s:service xmlns:s="https://www.w3.org/2007/app" xmlns="https://www.w3.org/2005/Atom">
  <s:workspace><title>W</title>
    <s:collection href="h"><title>C</title>
      <s:categories fixed="yes"><category scheme="urn:ietf:params:rolie:category:information-type" term="weakness"/></s:categories>
    </s:collection>
  </s:workspace>
</s:service>"#;
    let read = read_service_document(body.as_bytes(), &limits()).unwrap();
    let collection = &read.workspaces[0].collections[0];
    assert_eq!(read.workspaces[0].title, "W");
    assert_eq!(collection.href, "h");
    assert_eq!(collection.title, "C");
    // A client only chooses collections: a term unknown here is kept.
    assert_eq!(collection.information_type.as_deref(), Some("weakness"));
}

#[test]
fn bad_entries_get_their_errors() {
    let read = |body: &str| read_entry(body.as_bytes(), &limits(), rolie_mappings());
    const ATOM: &str = "xmlns=\"http://www.w3.org/2005/Atom\"";
    assert_eq!(
        read(&format!("<entry {ATOM}><title>t</title></entry>")),
        Err(RolieError::NoContent)
    );
    assert_eq!(
        read(&format!(
            "<entry {ATOM}><content type=\"application/xml\"/></entry>"
        )),
        Err(RolieError::NoContent)
    );
    assert!(matches!(
        read(&format!("<entry {ATOM}><content src=\"x\"/>")),
        Err(RolieError::Malformed(_))
    ));
    assert!(matches!(
        read("<entry xmlns=\"urn:not-atom\"><content src=\"x\"/></entry>"),
        Err(RolieError::WrongRoot { .. })
    ));
    assert!(matches!(
        read(&format!("<feed {ATOM}/>")),
        Err(RolieError::WrongRoot { .. })
    ));
    let category = |term: &str| {
        format!(
            "<category scheme=\"urn:ietf:params:rolie:category:information-type\" term=\"{term}\"/>"
        )
    };
    assert_eq!(
        read(&format!(
            "<entry {ATOM}>{}<content src=\"x\"/></entry>",
            category("gossip")
        )),
        Err(RolieError::UnknownInformationType("gossip".to_owned()))
    );
    assert_eq!(
        read(&format!(
            "<entry {ATOM}>{}{}<content src=\"x\"/></entry>",
            category("incident"),
            category("indicator")
        )),
        Err(RolieError::SeveralInformationTypes)
    );
    assert!(matches!(
        read(&format!(
            "<entry {ATOM}><content src=\"x\"/><content src=\"y\"/></entry>"
        )),
        Err(RolieError::Invalid {
            element: "atom:content",
            ..
        })
    ));
    assert!(matches!(
        read(&format!(
            "<entry {ATOM}><content type=\"text\"><b/></content></entry>"
        )),
        Err(RolieError::Invalid {
            element: "atom:content",
            ..
        })
    ));
    assert!(matches!(
        read(&format!(
            "<entry {ATOM}><updated>yesterday</updated><content src=\"x\"/></entry>"
        )),
        Err(RolieError::Invalid {
            element: "atom:updated",
            ..
        })
    ));
    assert!(matches!(
        read(&format!(
            "<entry {ATOM}><link rel=\"x\"/><content src=\"x\"/></entry>"
        )),
        Err(RolieError::Invalid {
            element: "atom:link",
            ..
        })
    ));
    assert!(matches!(
        read(&format!("<entry {ATOM}><p:x/><content src=\"x\"/></entry>")),
        Err(RolieError::Malformed(_))
    ));
    assert_eq!(
        read_entry(b"\xff<entry/>", &limits(), rolie_mappings()),
        Err(RolieError::NotUtf8 { at: 0 })
    );
    // Every message is short enough for a 4xx body.
    let message = RolieError::UnknownInformationType("gossip".to_owned()).to_string();
    assert_eq!(
        message,
        "\"gossip\" is not a ROLIE information type known here"
    );
}

#[test]
fn hostile_documents_are_refused() {
    let entry_with = |inner: &str| {
        format!(
            "<entry xmlns=\"http://www.w3.org/2005/Atom\"><title>{inner}</title><content src=\"x\"/></entry>"
        )
    };
    let laughs = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;\">]>{}",
        entry_with("&lol2;")
    );
    for body in [
        laughs,
        format!(
            "<!DOCTYPE entry SYSTEM \"file:///etc/passwd\">{}",
            entry_with("t")
        ),
    ] {
        for result in [
            read_entry(body.as_bytes(), &limits(), rolie_mappings()).map(|_| ()),
            read_feed(body.as_bytes(), &limits(), rolie_mappings()).map(|_| ()),
            read_service_document(body.as_bytes(), &limits()).map(|_| ()),
        ] {
            assert!(
                matches!(result, Err(RolieError::Malformed(ref r)) if r.contains("document type")),
                "{result:?}"
            );
        }
    }
    assert!(matches!(
        read_entry(
            entry_with("&undefined;").as_bytes(),
            &limits(),
            rolie_mappings()
        ),
        Err(RolieError::Malformed(_))
    ));

    let deep = format!(
        "<entry xmlns=\"http://www.w3.org/2005/Atom\"><content type=\"application/xml\">{}{}</content></entry>",
        "<a>".repeat(1000),
        "</a>".repeat(1000)
    );
    let result = read_entry(deep.as_bytes(), &limits(), rolie_mappings());
    assert!(
        matches!(result, Err(RolieError::Malformed(ref r)) if r.contains("deeper")),
        "{result:?}"
    );

    let small = Limits {
        max_body_bytes: 100,
        ..Limits::default()
    };
    let huge = entry_with(&"x".repeat(200));
    assert_eq!(
        read_entry(huge.as_bytes(), &small, rolie_mappings()),
        Err(RolieError::TooLarge {
            size: huge.len(),
            limit: 100
        })
    );
    assert!(matches!(
        read_feed(huge.as_bytes(), &small, rolie_mappings()),
        Err(RolieError::TooLarge { .. })
    ));
    assert!(matches!(
        read_service_document(huge.as_bytes(), &small),
        Err(RolieError::TooLarge { .. })
    ));
}

#[test]
fn csirt_id_of_iodef_1_and_2() {
    let iodef1 = r#"<?xml version="1.0" encoding="UTF-8"?>
<IODEF-Document version="1.00" lang="en" xmlns="urn:ietf:params:xml:ns:iodef-1.0">
  <Incident purpose="reporting">
    <IncidentID name="csirt.example.com">189493</IncidentID>
    <ReportTime>2004-02-02T22:49:24+00:00</ReportTime>
  </Incident>
</IODEF-Document>"#;
    assert_eq!(csirt_id(iodef1).as_deref(), Some("csirt.example.com189493"));

    let iodef2 = r#"<iodef:IODEF-Document version="2.0" xml:lang="en"
    xmlns:iodef="urn:ietf:params:xml:ns:iodef-2.0">
  <iodef:Incident purpose="reporting" restriction="private">
    <iodef:GenerationTime>2015-07-01T00:00:00Z</iodef:GenerationTime>
    <iodef:IncidentID name="csirt.example.com"> 492382 </iodef:IncidentID>
  </iodef:Incident>
</iodef:IODEF-Document>"#;
    assert_eq!(csirt_id(iodef2).as_deref(), Some("csirt.example.com492382"));

    assert_eq!(csirt_id(STIX), None);
    assert_eq!(csirt_id("not xml"), None);
    let no_id =
        r#"<IODEF-Document xmlns="urn:ietf:params:xml:ns:iodef-2.0"><Incident/></IODEF-Document>"#;
    assert_eq!(csirt_id(no_id), None);
    let wrong_ns = iodef1.replace("iodef-1.0", "iodef-9.0");
    assert_eq!(csirt_id(&wrong_ns), None);
}
