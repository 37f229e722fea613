//! Parse and serialize a TAXII 1.1 poll response of 100 content blocks of
//! 2 KB each, beside the ceiling: a bare quick-xml event scan of the same
//! bytes. Report the ratio parse / scan, measured in one run.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quick_xml::Reader;
use quick_xml::events::Event;
use taxiway::bindings::taxii_xml::{parse, serialize};
use taxiway::core::Dialect;

const BLOCKS: usize = 100;

/// A STIX 1.1.1 indicator package of about 2 KB, with the namespace
/// declarations and QName-valued attributes real packages carry.
fn stix_package(index: usize) -> String {
    let mut package = format!(
        r#"<stix:STIX_Package xmlns:stix="http://stix.mitre.org/stix-1" xmlns:indicator="http://stix.mitre.org/Indicator-2" xmlns:cybox="http://cybox.mitre.org/cybox-2" xmlns:AddressObj="http://cybox.mitre.org/objects#AddressObject-2" xmlns:stixVocabs="http://stix.mitre.org/default_vocabularies-1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:example="http://example.com" id="example:Package-{index:08}" version="1.1.1" timestamp="2014-05-08T09:00:00.000000Z">
  <stix:STIX_Header><stix:Title>Bad addresses, batch {index}</stix:Title></stix:STIX_Header>
  <stix:Indicators>"#
    );
    for item in 0..4 {
        package.push_str(&format!(
            r#"
    <stix:Indicator xsi:type="indicator:IndicatorType" id="example:Indicator-{index:08}-{item}" timestamp="2014-05-08T09:00:00.000000Z">
      <indicator:Title>Malicious address {item} &amp; its neighbours</indicator:Title>
      <indicator:Type xsi:type="stixVocabs:IndicatorTypeVocab-1.1">IP Watchlist</indicator:Type>
      <indicator:Observable id="example:Observable-{index:08}-{item}">
        <cybox:Object id="example:Address-{index:08}-{item}">
          <cybox:Properties xsi:type="AddressObj:AddressObjectType" category="ipv4-addr">
            <AddressObj:Address_Value condition="Equals">198.51.100.{item}</AddressObj:Address_Value>
          </cybox:Properties>
        </cybox:Object>
      </indicator:Observable>
    </stix:Indicator>"#
        ));
    }
    package.push_str("\n  </stix:Indicators>\n</stix:STIX_Package>");
    package
}

fn poll_response() -> Vec<u8> {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<taxii_11:Poll_Response xmlns:taxii_11="http://taxii.mitre.org/messages/taxii_xml_binding-1.1" message_id="urn:uuid:1c2d3e4f-0000-4000-8000-000000000008" in_response_to="urn:uuid:1c2d3e4f-0000-4000-8000-000000000007" collection_name="Gold" more="false">
  <taxii_11:Exclusive_Begin_Timestamp>2014-05-08T00:00:00Z</taxii_11:Exclusive_Begin_Timestamp>
  <taxii_11:Inclusive_End_Timestamp>2014-05-09T00:00:00Z</taxii_11:Inclusive_End_Timestamp>
  <taxii_11:Record_Count partial_count="false">100</taxii_11:Record_Count>
"#,
    );
    for index in 0..BLOCKS {
        xml.push_str(&format!(
            r#"  <taxii_11:Content_Block>
    <taxii_11:Content_Binding binding_id="urn:stix.mitre.org:xml:1.1.1"/>
    <taxii_11:Content>{}</taxii_11:Content>
    <taxii_11:Timestamp_Label>2014-05-08T09:{:02}:{:02}.{:06}Z</taxii_11:Timestamp_Label>
  </taxii_11:Content_Block>
"#,
            stix_package(index),
            index / 60,
            index % 60,
            index * 7
        ));
    }
    xml.push_str("</taxii_11:Poll_Response>\n");
    xml.into_bytes()
}

/// The ceiling: every event lexed, nothing interpreted.
fn bare_scan(bytes: &[u8]) -> usize {
    let mut reader = Reader::from_reader(bytes);
    let mut events = 0;
    loop {
        match reader.read_event() {
            Ok(Event::Eof) => return events,
            Ok(_) => events += 1,
            Err(error) => panic!("the benchmark input is malformed: {error}"),
        }
    }
}

fn codec(c: &mut Criterion) {
    let bytes = poll_response();
    let parsed = parse(&bytes).expect("the benchmark input parses");
    assert_eq!(parsed.dialect, Dialect::V11);
    let mut group = c.benchmark_group("poll_response_100x2KB");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("quick_xml_scan", |b| {
        b.iter(|| bare_scan(black_box(&bytes)))
    });
    group.bench_function("parse", |b| b.iter(|| parse(black_box(&bytes)).unwrap()));
    group.bench_function("serialize", |b| {
        b.iter(|| serialize(black_box(&parsed.message), Dialect::V11).unwrap())
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
