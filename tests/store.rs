//! The embedded SQLite store: labels, group commit, polls, durability,
//! schema versions and content round trips.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use taxiway::core::{
    ContentBinding, Delivery, Dialect, MessageBinding, ProtocolBinding, PushParameters,
    SubscriptionStatus, Timestamp, XmlContent,
};
use taxiway::store::{
    Commit, Committed, Edit, EditConflict, NewBlock, NewEgress, PollQuery, SqliteStore, Store,
    StoreError, StoredBlock, Subscription,
};

const STIX: &str = "urn:stix.mitre.org:xml:1.1.1";
const CYBOX: &str = "urn:cybox.mitre.org:xml:2.1";

/// A fresh directory under cargo's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = format!(
            "store-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique);
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn block(feed: &str, binding: &str, content: XmlContent) -> NewBlock {
    NewBlock {
        feed: feed.to_owned(),
        binding: ContentBinding::new(binding),
        content,
        source_message_id: "42".to_owned(),
    }
}

fn text(feed: &str, body: &str) -> NewBlock {
    block(feed, STIX, XmlContent::Text(body.to_owned()))
}

fn query(feed: &str, begin: Option<Timestamp>, end: Option<Timestamp>, limit: usize) -> PollQuery {
    PollQuery {
        feed: feed.to_owned(),
        exclusive_begin: begin,
        inclusive_end: end,
        bindings: Vec::new(),
        limit,
    }
}

fn labels(blocks: &[StoredBlock]) -> Vec<Timestamp> {
    blocks.iter().map(|b| b.label).collect()
}

fn assert_strictly_increasing(labels: &[Timestamp]) {
    for pair in labels.windows(2) {
        assert!(
            pair[0].unix_nanos() < pair[1].unix_nanos(),
            "{} !< {}",
            pair[0],
            pair[1]
        );
    }
}

fn micros(t: Timestamp) -> i128 {
    t.unix_nanos() / 1000
}

async fn open(dir: &TempDir) -> SqliteStore {
    SqliteStore::open(dir.path()).await.expect("open the store")
}

/// A connection of the test's own, beside the store's.
fn raw_connection(dir: &TempDir) -> rusqlite::Connection {
    raw_connection_at(dir.path())
}

fn raw_connection_at(data_dir: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(data_dir.join("taxiway.sqlite3"))
        .expect("open the database directly");
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .expect("set a busy timeout");
    conn
}

#[tokio::test]
async fn open_creates_the_directory_and_an_empty_store() {
    let dir = TempDir::new("empty");
    let store = SqliteStore::open(&dir.path().join("a/b")).await.unwrap();
    assert!(dir.path().join("a/b/taxiway.sqlite3").is_file());
    assert_eq!(store.latest_label("nothing").await.unwrap(), None);
    let page = store.poll(query("nothing", None, None, 10)).await.unwrap();
    assert!(page.blocks.is_empty());
    assert!(!page.more);
    assert!(store.append(Vec::new()).await.unwrap().is_empty());
    assert_eq!(store.commits(), 0);
    let conn = raw_connection_at(&dir.path().join("a/b"));
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(conn);
    store.close().await;
}

#[tokio::test]
async fn blocks_of_two_kilobytes_share_pages() {
    let dir = TempDir::new("pages");
    let store = open(&dir).await;
    let pages = || {
        raw_connection_at(dir.path())
            .query_row(
                "SELECT page_count * page_size FROM pragma_page_count, pragma_page_size",
                [],
                |row| row.get::<_, i64>(0),
            )
            .unwrap()
    };
    let before = pages();
    let body = "x".repeat(2000);
    let blocks = 1000;
    store
        .append((0..blocks).map(|_| text("feed", &body)).collect())
        .await
        .unwrap();
    // One block a page (4 KiB pages) would take twice the content's size.
    let grown = (pages() - before) as f64 / (blocks * body.len()) as f64;
    assert!(
        grown < 1.6,
        "the store grew {grown:.2} times the content it was given"
    );
    store.close().await;
}

#[tokio::test]
async fn labels_increase_within_one_call_of_many_blocks() {
    let dir = TempDir::new("one-call");
    let store = open(&dir).await;
    // Far more blocks than microseconds the commit takes: most share a "now".
    let blocks = (0..2000)
        .map(|i| text("feed", &format!("block {i}")))
        .collect();
    let stored = store.append(blocks).await.unwrap();
    assert_eq!(stored.len(), 2000);
    assert_strictly_increasing(&labels(&stored));
    for (i, block) in stored.iter().enumerate() {
        assert_eq!(block.label.unix_nanos() % 1000, 0, "microsecond resolution");
        assert_eq!(block.label.offset_minutes(), Some(0), "UTC");
        assert_eq!(block.block.timestamp_label, Some(block.label));
        assert_eq!(block.block.content.as_str(), format!("block {i}"));
    }
    assert_strictly_increasing(
        &stored
            .iter()
            .map(|b| Timestamp::from_unix(b.id, 0))
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        store.latest_label("feed").await.unwrap(),
        stored.last().map(|b| b.label)
    );
    assert_eq!(store.commits(), 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_commits_and_labels_stay_strictly_increasing() {
    let dir = TempDir::new("concurrent");
    let store = Arc::new(open(&dir).await);
    const TASKS: usize = 32;
    const APPENDS: usize = 50;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut stored = Vec::new();
            for i in 0..APPENDS {
                // Two feeds, so that labels are per feed and both interleave.
                let feed = if task % 2 == 0 { "even" } else { "odd" };
                let mut got = store
                    .append(vec![text(feed, &format!("{task}/{i}"))])
                    .await
                    .expect("append");
                stored.append(&mut got);
            }
            stored
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    assert_eq!(all.len(), TASKS * APPENDS);
    let commits = store.commits();
    assert!(
        commits < (TASKS * APPENDS) as u64,
        "{commits} commits for {} appends",
        TASKS * APPENDS
    );

    for feed in ["even", "odd"] {
        let mut by_id: Vec<&StoredBlock> = all.iter().filter(|b| b.feed == feed).collect();
        by_id.sort_by_key(|b| b.id);
        let labels: Vec<Timestamp> = by_id.iter().map(|b| b.label).collect();
        // Ids and labels agree on the order, and no label repeats.
        assert_strictly_increasing(&labels);
        let page = store
            .poll(query(feed, None, None, TASKS * APPENDS))
            .await
            .unwrap();
        assert_eq!(page.blocks.len(), TASKS * APPENDS / 2);
        assert_eq!(
            page.blocks.iter().collect::<Vec<_>>(),
            by_id,
            "a poll returns what the appends answered"
        );
    }
    // Each task's own appends come back in the order it made them.
    for task in 0..TASKS {
        let mine: Vec<Timestamp> = all
            .iter()
            .filter(|b| b.block.content.as_str().starts_with(&format!("{task}/")))
            .map(|b| b.label)
            .collect();
        assert_eq!(mine.len(), APPENDS);
        assert_strictly_increasing(&mine);
    }
    match Arc::try_unwrap(store) {
        Ok(store) => store.close().await,
        Err(_) => panic!("the store is still shared"),
    }
}

#[tokio::test]
async fn poll_ranges_are_exclusive_then_inclusive() {
    let dir = TempDir::new("ranges");
    let store = open(&dir).await;
    let stored = store
        .append((0..5).map(|i| text("feed", &format!("{i}"))).collect())
        .await
        .unwrap();
    store.append(vec![text("other", "x")]).await.unwrap();
    let l = labels(&stored);
    let poll = |begin, end| {
        let store = &store;
        async move {
            labels(
                &store
                    .poll(query("feed", begin, end, 100))
                    .await
                    .unwrap()
                    .blocks,
            )
        }
    };

    assert_eq!(poll(None, None).await, l);
    assert_eq!(poll(Some(l[1]), Some(l[3])).await, l[2..=3]);
    assert_eq!(poll(Some(l[1]), None).await, l[2..]);
    assert_eq!(poll(None, Some(l[1])).await, l[..=1]);
    assert_eq!(poll(Some(l[4]), None).await, []);
    assert_eq!(poll(Some(l[2]), Some(l[2])).await, []);
    // Bounds finer than a microsecond: just after l[1] still excludes l[1],
    // just before l[3] excludes l[3].
    assert_eq!(
        poll(Some(l[1].shifted_nanos(1)), Some(l[3].shifted_nanos(-1))).await,
        l[2..=2]
    );
    assert_eq!(
        poll(Some(l[1].shifted_nanos(-1)), Some(l[3].shifted_nanos(999))).await,
        l[1..=3]
    );
    // The same instant in another zone is the same bound.
    let zoned: Timestamp = {
        let utc = l[1].to_string();
        let shifted = l[1].shifted_nanos(2 * 3600 * 1_000_000_000).to_string();
        assert!(utc.ends_with('Z'));
        format!("{}+02:00", shifted.trim_end_matches('Z'))
            .parse()
            .unwrap()
    };
    assert_eq!(zoned.unix_nanos(), l[1].unix_nanos());
    assert_eq!(poll(Some(zoned), None).await, l[2..]);
    store.close().await;
}

#[tokio::test]
async fn more_is_set_exactly_at_the_page_boundary() {
    let dir = TempDir::new("more");
    let store = open(&dir).await;
    let stored = store
        .append((0..6).map(|i| text("feed", &format!("{i}"))).collect())
        .await
        .unwrap();
    let l = labels(&stored);

    let page = store.poll(query("feed", None, None, 5)).await.unwrap();
    assert_eq!(labels(&page.blocks), l[..5]);
    assert!(page.more);
    let page = store.poll(query("feed", None, None, 6)).await.unwrap();
    assert_eq!(labels(&page.blocks), l);
    assert!(!page.more);
    let page = store.poll(query("feed", None, None, 7)).await.unwrap();
    assert!(!page.more);

    // Paging on from the last label returned covers everything once.
    let first = store.poll(query("feed", None, None, 4)).await.unwrap();
    assert!(first.more);
    let next = store
        .poll(query("feed", first.blocks.last().map(|b| b.label), None, 4))
        .await
        .unwrap();
    assert_eq!(labels(&next.blocks), l[4..]);
    assert!(!next.more);

    // The end bound counts: nothing beyond it is "more".
    let page = store
        .poll(query("feed", None, Some(l[2]), 3))
        .await
        .unwrap();
    assert_eq!(labels(&page.blocks), l[..3]);
    assert!(!page.more);
    let page = store
        .poll(query("feed", None, Some(l[3]), 3))
        .await
        .unwrap();
    assert!(page.more);

    let page = store.poll(query("feed", None, None, 0)).await.unwrap();
    assert!(page.blocks.is_empty());
    assert!(page.more);
    store.close().await;
}

#[tokio::test]
async fn binding_filter() {
    let dir = TempDir::new("bindings");
    let store = open(&dir).await;
    let stored = store
        .append(vec![
            block("feed", STIX, XmlContent::Text("a".into())),
            block("feed", CYBOX, XmlContent::Text("b".into())),
            block("feed", STIX, XmlContent::Text("c".into())),
        ])
        .await
        .unwrap();
    let l = labels(&stored);
    let poll = |bindings: &[&str]| {
        let mut q = query("feed", None, None, 10);
        q.bindings = bindings.iter().map(|b| b.to_string()).collect();
        let store = &store;
        async move { labels(&store.poll(q).await.unwrap().blocks) }
    };
    assert_eq!(poll(&[]).await, l);
    assert_eq!(poll(&[STIX]).await, vec![l[0], l[2]]);
    assert_eq!(poll(&[CYBOX]).await, vec![l[1]]);
    assert_eq!(poll(&[CYBOX, STIX]).await, l);
    assert_eq!(poll(&["urn:nothing"]).await, []);

    // `more` counts filtered blocks only.
    let mut q = query("feed", None, None, 1);
    q.bindings = vec![CYBOX.to_owned()];
    assert!(!store.poll(q).await.unwrap().more);
    store.close().await;
}

#[tokio::test]
async fn contents_round_trip_byte_for_byte() {
    let dir = TempDir::new("contents");
    let store = open(&dir).await;
    let xml = "<stix:STIX_Package xmlns:stix=\"http://stix.mitre.org/stix-1\" \
               xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" id='x'>\r\n\
               \t<stix:Title>Ünïcödé — 日本語 🦀 &amp; &lt;tag&gt;</stix:Title>\n  \
               <a xsi:type=\"stixVocabs:X\"/><!-- comment --><![CDATA[ <raw> ]]>\n\
               </stix:STIX_Package>\n";
    let mut with_subtype = block("feed", STIX, XmlContent::Xml(xml.to_owned()));
    with_subtype.binding.subtypes = vec!["urn:example:subtype".to_owned()];
    let big = "ä".repeat(512 * 1024);
    let new = vec![
        with_subtype,
        block(
            "feed",
            CYBOX,
            XmlContent::Text("  <not markup> & é\u{0}\r\n ".into()),
        ),
        block("feed", STIX, XmlContent::Text(String::new())),
        block("feed", STIX, XmlContent::Xml(String::new())),
        block("feed", STIX, XmlContent::Text(big.clone())),
    ];
    let stored = store.append(new.clone()).await.unwrap();
    let polled = store
        .poll(query("feed", None, None, 10))
        .await
        .unwrap()
        .blocks;
    assert_eq!(polled, stored);
    for (given, got) in new.iter().zip(&polled) {
        assert_eq!(got.block.content, given.content);
        assert_eq!(
            got.block.content.as_str().as_bytes(),
            given.content.as_str().as_bytes()
        );
        assert_eq!(got.block.binding, given.binding);
        assert_eq!(got.feed, "feed");
    }
    assert!(matches!(polled[0].block.content, XmlContent::Xml(_)));
    assert!(matches!(polled[2].block.content, XmlContent::Text(_)));
    assert!(matches!(polled[3].block.content, XmlContent::Xml(_)));
    assert_eq!(polled[4].block.content.as_str().len(), big.len());
    store.close().await;
}

#[tokio::test]
async fn more_than_one_subtype_is_refused_and_nothing_stored() {
    let dir = TempDir::new("subtypes");
    let store = open(&dir).await;
    let mut bad = text("feed", "b");
    bad.binding.subtypes = vec!["one".into(), "two".into()];
    let result = store.append(vec![text("feed", "a"), bad]).await;
    assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    assert_eq!(store.latest_label("feed").await.unwrap(), None);
    store.close().await;
}

#[tokio::test]
async fn data_survives_closing_and_reopening() {
    let dir = TempDir::new("reopen");
    let store = open(&dir).await;
    let first = store
        .append(vec![text("feed", "one"), text("feed", "two")])
        .await
        .unwrap();
    // Dropped, not closed: what was answered is on disk all the same.
    drop(store);

    let store = open(&dir).await;
    let page = store.poll(query("feed", None, None, 10)).await.unwrap();
    assert_eq!(page.blocks, first);
    let second = store.append(vec![text("feed", "three")]).await.unwrap();
    assert!(second[0].label > first[1].label);
    assert!(second[0].id > first[1].id);
    store.close().await;

    // A label in the future (a clock that went back) is continued from after a
    // reopen: the writer loads the last label from the table.
    let future_us = micros(second[0].label) + 3_600_000_000;
    raw_connection(&dir)
        .execute(
            "INSERT INTO content_blocks (feed, label_us, binding_id, subtype, content_kind, content, content_bytes, source_message_id) \
             VALUES ('feed', ?1, ?2, NULL, 'text', 'future', 6, '1')",
            rusqlite::params![i64::try_from(future_us).unwrap(), STIX],
        )
        .unwrap();

    let store = open(&dir).await;
    let third = store.append(vec![text("feed", "four")]).await.unwrap();
    assert_eq!(micros(third[0].label), future_us + 1);
    let all = store.poll(query("feed", None, None, 10)).await.unwrap();
    assert_eq!(
        all.blocks
            .iter()
            .map(|b| b.block.content.as_str())
            .collect::<Vec<_>>(),
        ["one", "two", "three", "future", "four"]
    );
    store.close().await;
}

/// A database as the given schema version left it, made by that version's
/// migrations, to open with this one.
fn database_at_version(dir: &TempDir, version: usize) -> rusqlite::Connection {
    const MIGRATIONS: [&str; 5] = [
        include_str!("../migrations/sqlite/0001_content_blocks.sql"),
        include_str!("../migrations/sqlite/0002_subscriptions_outbox.sql"),
        include_str!("../migrations/sqlite/0003_egress_seen_cursors.sql"),
        include_str!("../migrations/sqlite/0004_feed_changes.sql"),
        include_str!("../migrations/sqlite/0005_content_bytes.sql"),
    ];
    std::fs::create_dir_all(dir.path()).unwrap();
    let conn = raw_connection(dir);
    conn.execute_batch("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)")
        .unwrap();
    for (applied, migration) in MIGRATIONS.iter().take(version).enumerate() {
        conn.execute_batch(migration).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (version) VALUES (?1)",
            [applied as i64 + 1],
        )
        .unwrap();
    }
    conn
}

#[tokio::test]
async fn a_database_of_an_earlier_schema_is_brought_up_to_date_with_its_blocks_measured() {
    let dir = TempDir::new("earlier");
    // The schema as version 4 left it, with a block stored then.
    let conn = database_at_version(&dir, 4);
    conn.execute(
        "INSERT INTO content_blocks (feed, label_us, binding_id, subtype, content_kind, content, source_message_id) \
         VALUES ('feed', 1000000, ?1, NULL, 'text', 'été', '1')",
        [STIX],
    )
    .unwrap();
    drop(conn);

    let store = open(&dir).await;
    let extent = store
        .poll_extent(query("feed", None, None, 10))
        .await
        .unwrap();
    assert_eq!(
        extent.blocks,
        [(Timestamp::from_unix(1, 0), "été".len() as u64)],
        "sized in bytes by the migration"
    );
    let later = store.append(vec![text("feed", "later")]).await.unwrap();
    let extent = store
        .poll_extent(query("feed", None, None, 10))
        .await
        .unwrap();
    assert_eq!(extent.blocks[1], (later[0].label, 5));
    store.close().await;
}

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused() {
    let dir = TempDir::new("newer");
    open(&dir).await.close().await;
    raw_connection(&dir)
        .execute("INSERT INTO schema_migrations (version) VALUES (9999)", [])
        .unwrap();

    match SqliteStore::open(dir.path()).await {
        Err(StoreError::Corrupt(reason)) => assert!(reason.contains("9999"), "{reason}"),
        Err(other) => panic!("expected Corrupt, got {other:?}"),
        Ok(_) => panic!("a newer database was opened"),
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = TempDir::new("garbage");
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(
        dir.path().join("taxiway.sqlite3"),
        "this is not a database, but it is long enough to have a header ".repeat(64),
    )
    .unwrap();
    let result = SqliteStore::open(dir.path()).await;
    assert!(
        matches!(result, Err(StoreError::Corrupt(_))),
        "{:?}",
        result.err()
    );
}

#[tokio::test]
async fn a_failed_commit_stores_nothing_of_the_call_and_the_store_goes_on() {
    let dir = TempDir::new("failure");
    let store = open(&dir).await;
    let before = store.append(vec![text("good", "0")]).await.unwrap();
    // A trigger of the test's own makes one feed's inserts fail.
    let conn = raw_connection(&dir);
    conn.execute(
        "CREATE TRIGGER poison BEFORE INSERT ON content_blocks WHEN NEW.feed = 'poison' \
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
        [],
    )
    .unwrap();

    let result = store
        .append(vec![
            text("good", "1"),
            text("poison", "2"),
            text("good", "3"),
        ])
        .await;
    match result {
        Err(StoreError::Unavailable(reason)) => assert!(reason.contains("poisoned"), "{reason}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(
        store
            .poll(query("good", None, None, 10))
            .await
            .unwrap()
            .blocks,
        before
    );

    conn.execute("DROP TRIGGER poison", []).unwrap();
    drop(conn);
    let after = store.append(vec![text("good", "4")]).await.unwrap();
    assert!(after[0].label > before[0].label);
    assert_eq!(
        store
            .poll(query("good", None, None, 10))
            .await
            .unwrap()
            .blocks
            .len(),
        2
    );
    store.close().await;
}

/// An extent is the labels and sizes of the page a poll returns, for every
/// range, limit and binding filter.
#[tokio::test]
async fn poll_extent_agrees_with_poll() {
    let dir = TempDir::new("span");
    let store = open(&dir).await;
    let stored = store
        .append(
            (0..9)
                .map(|i| {
                    let binding = if i % 3 == 0 { CYBOX } else { STIX };
                    // Sizes differ, and count bytes, not characters.
                    block("feed", binding, XmlContent::Text("é".repeat(i * 7)))
                })
                .collect(),
        )
        .await
        .unwrap();
    store.append(vec![text("other", "x")]).await.unwrap();
    let l = labels(&stored);
    let bounds: Vec<Option<Timestamp>> = [None, Some(l[0]), Some(l[4]), Some(l[8])].into();
    let filters: [&[&str]; 3] = [&[], &[STIX], &[CYBOX]];
    let mut checked = 0;
    for begin in &bounds {
        for end in &bounds {
            for filter in filters {
                for limit in [0, 1, 3, 9, 50] {
                    let mut q = query("feed", *begin, *end, limit);
                    q.bindings = filter.iter().map(|b| b.to_string()).collect();
                    let page = store.poll(q.clone()).await.unwrap();
                    let extent = store.poll_extent(q.clone()).await.unwrap();
                    let expected: Vec<(Timestamp, u64)> = page
                        .blocks
                        .iter()
                        .map(|b| (b.label, b.block.content.as_str().len() as u64))
                        .collect();
                    assert_eq!(extent.blocks, expected, "{q:?}");
                    assert_eq!(extent.more, page.more, "{q:?}");
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 4 * 4 * 3 * 5);
    store.close().await;
}

fn edit_commit(edit: Edit) -> Commit {
    Commit {
        edits: vec![edit],
        ..Commit::default()
    }
}

fn push_subscription(feed: &str) -> Subscription {
    Subscription {
        id: format!("sub-{feed}"),
        feed: feed.to_owned(),
        status: SubscriptionStatus::Active,
        delivery: Delivery::Push(PushParameters {
            protocol: ProtocolBinding::Http,
            address: "http://127.0.0.1:1/inbox".to_owned(),
            message_binding: MessageBinding::Xml(Dialect::V11),
        }),
        content_bindings: Vec::new(),
        created: Timestamp::from_unix(1_700_000_000, 0),
        created_by: None,
    }
}

/// A store whose feed has a push subscriber and two blocks, "one" and "two".
async fn two_blocks_for_a_subscriber(name: &str) -> (TempDir, SqliteStore, Vec<StoredBlock>) {
    let dir = TempDir::new(name);
    let store = open(&dir).await;
    store
        .create_subscription(push_subscription("feed"))
        .await
        .unwrap();
    let stored = store
        .append(vec![text("feed", "one"), text("feed", "two")])
        .await
        .unwrap();
    (dir, store, stored)
}

#[tokio::test]
async fn a_replaced_block_keeps_its_id_takes_the_next_label_and_is_pushed_once_more() {
    let (_dir, store, first) = two_blocks_for_a_subscriber("replace").await;
    let later = Timestamp::from_unix(4_000_000_000, 0);
    // The first block's push is delivered; the second's is still pending.
    let due = store.claim_due(later, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    store.mark_delivered(due[0].row.id).await.unwrap();

    let replace = |id, expected, body: &str| Edit::Replace {
        id,
        expected,
        block: text("feed", body),
    };
    let committed = store
        .commit(edit_commit(replace(
            first[0].id,
            Some(first[0].label),
            "one, again",
        )))
        .await
        .unwrap();
    let Committed::Stored(replaced) = committed else {
        panic!("{committed:?}");
    };
    assert_eq!(replaced[0].id, first[0].id, "same block");
    assert!(replaced[0].label > first[1].label, "the feed's next label");
    assert_eq!(
        store.latest_label("feed").await.unwrap(),
        Some(replaced[0].label)
    );
    let page = store.poll(query("feed", None, None, 10)).await.unwrap();
    let contents: Vec<&str> = page
        .blocks
        .iter()
        .map(|b| b.block.content.as_str())
        .collect();
    assert_eq!(contents, ["two", "one, again"], "moved to the end, once");
    let extent = store
        .poll_extent(query("feed", None, None, 10))
        .await
        .unwrap();
    assert_eq!(
        extent.blocks,
        page.blocks
            .iter()
            .map(|b| (b.label, b.block.content.as_str().len() as u64))
            .collect::<Vec<_>>(),
        "the extent measures the new content"
    );

    // Its version is now the new label: the old one conflicts.
    for (expected, conflict) in [
        (
            Some(first[0].label),
            EditConflict::Changed(replaced[0].label),
        ),
        (None, EditConflict::Missing),
    ] {
        let id = if conflict == EditConflict::Missing {
            999_999
        } else {
            first[0].id
        };
        let committed = store
            .commit(edit_commit(replace(id, expected, "lost update")))
            .await
            .unwrap();
        assert_eq!(committed, Committed::Conflict(conflict));
    }
    let page = store.poll(query("feed", None, None, 10)).await.unwrap();
    assert!(
        page.blocks
            .iter()
            .all(|b| b.block.content.as_str() != "lost update")
    );

    // Delivered before, so pushed again; the pending push of the other block stays one.
    let due = store.claim_due(later, 10).await.unwrap();
    let pushed: Vec<(i64, &str)> = due
        .iter()
        .map(|d| (d.block.id, d.block.block.content.as_str()))
        .collect();
    assert_eq!(
        pushed,
        [(first[1].id, "two"), (first[0].id, "one, again")],
        "{due:?}"
    );
}

#[tokio::test]
async fn a_removed_block_is_gone_with_its_pushes_and_the_feed_label_moves_on() {
    let (dir, store, stored) = two_blocks_for_a_subscriber("remove").await;
    let newest = stored[1].label;
    let remove = |id, expected| Edit::Remove {
        feed: "feed".to_owned(),
        id,
        expected,
    };
    let committed = store
        .commit(edit_commit(remove(stored[1].id, Some(stored[0].label))))
        .await
        .unwrap();
    assert_eq!(
        committed,
        Committed::Conflict(EditConflict::Changed(newest))
    );
    let committed = store
        .commit(edit_commit(remove(stored[1].id, Some(newest))))
        .await
        .unwrap();
    assert!(matches!(committed, Committed::Stored(_)), "{committed:?}");
    let page = store.poll(query("feed", None, None, 10)).await.unwrap();
    assert_eq!(page.blocks.len(), 1);
    assert_eq!(page.blocks[0].id, stored[0].id);
    assert_eq!(store.block("feed", stored[1].id).await.unwrap(), None);
    let moved = store.latest_label("feed").await.unwrap().unwrap();
    assert!(moved > newest, "a removal is a change of the feed");
    let later = Timestamp::from_unix(4_000_000_000, 0);
    let due = store.claim_due(later, 10).await.unwrap();
    assert_eq!(due.len(), 1, "its pending push went with it: {due:?}");
    assert_eq!(due[0].block.id, stored[0].id);
    let committed = store
        .commit(edit_commit(remove(stored[1].id, None)))
        .await
        .unwrap();
    assert_eq!(committed, Committed::Conflict(EditConflict::Missing));

    // The label is durable: after reopening, it stands and the next block follows it.
    store.close().await;
    let store = open(&dir).await;
    assert_eq!(store.latest_label("feed").await.unwrap(), Some(moved));
    let next = store.append(vec![text("feed", "three")]).await.unwrap();
    assert!(next[0].label > moved);
    assert_eq!(
        store.latest_label("feed").await.unwrap(),
        Some(next[0].label)
    );
}

#[tokio::test]
async fn a_commit_with_a_conflicting_edit_stores_nothing_of_itself_and_spares_the_others() {
    let dir = TempDir::new("conflict-batch");
    let store = Arc::new(open(&dir).await);
    let stored = store.append(vec![text("feed", "one")]).await.unwrap();
    let conflicting = Commit {
        blocks: vec![text("feed", "riding along")],
        edits: vec![Edit::Remove {
            feed: "feed".to_owned(),
            id: stored[0].id,
            expected: Some(Timestamp::from_unix(1, 0)),
        }],
        ..Commit::default()
    };
    let (a, b) = tokio::join!(
        store.commit(conflicting),
        store.append(vec![text("feed", "independent")])
    );
    assert!(matches!(a.unwrap(), Committed::Conflict(_)));
    b.unwrap();
    let page = store.poll(query("feed", None, None, 10)).await.unwrap();
    let contents: Vec<&str> = page
        .blocks
        .iter()
        .map(|b| b.block.content.as_str())
        .collect();
    assert_eq!(contents, ["one", "independent"]);
}

fn forward(destination: &str, message_id: &str) -> Commit {
    Commit {
        egress: vec![NewEgress {
            destination: destination.to_owned(),
            message_id: message_id.to_owned(),
            payload: format!("payload of {message_id}"),
        }],
        ..Commit::default()
    }
}

fn rows_in(dir: &TempDir, table: &str) -> i64 {
    raw_connection(dir)
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
}

#[tokio::test]
async fn delivered_rows_leave_their_outbox_payload_and_all() {
    let (dir, store, _) = two_blocks_for_a_subscriber("leave").await;
    for id in ["m1", "m2"] {
        store.commit(forward("out", id)).await.unwrap();
    }
    let later = Timestamp::from_unix(4_000_000_000, 0);
    let rows = store.claim_egress("out", later, 10).await.unwrap();
    assert_eq!(rows.len(), 2);
    store.egress_delivered(&[rows[0].id]).await.unwrap();
    let left = store.claim_egress("out", later, 10).await.unwrap();
    assert_eq!(
        left.iter().map(|row| &row.message_id).collect::<Vec<_>>(),
        ["m2"]
    );
    assert_eq!(
        rows_in(&dir, "egress_outbox"),
        1,
        "the delivered row is gone"
    );

    let due = store.claim_due(later, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    store.mark_delivered(due[0].row.id).await.unwrap();
    assert_eq!(store.claim_due(later, 10).await.unwrap().len(), 1);
    assert_eq!(rows_in(&dir, "outbox"), 1, "the delivered push is gone");
    let depth = store.outbox_depth().await.unwrap();
    assert_eq!(
        (depth.pending, depth.dead),
        (2, 0),
        "a push and a forward left"
    );
    store.close().await;
}

#[tokio::test]
async fn rows_delivered_under_an_earlier_schema_leave_at_the_upgrade() {
    let dir = TempDir::new("delivered-before");
    let conn = database_at_version(&dir, 5);
    conn.execute_batch(
        "INSERT INTO egress_outbox (destination, message_id, payload, next_attempt_us, state, created_us) \
         VALUES ('out', 'old', 'kept for good', 0, 'delivered', 0), \
                ('out', 'due', 'still to go', 0, 'pending', 0);",
    )
    .unwrap();
    drop(conn);

    let store = open(&dir).await;
    let rows = store
        .claim_egress("out", Timestamp::from_unix(4_000_000_000, 0), 10)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].message_id, "due");
    assert_eq!(rows_in(&dir, "egress_outbox"), 1);
    store.close().await;
}

#[tokio::test]
async fn delivery_workers_hear_of_commits_that_queue_pushes_or_forwards() {
    let dir = TempDir::new("changes");
    let store = open(&dir).await;
    let mut changes = store.outbox_changes();
    changes.borrow_and_update();
    store
        .append(vec![text("quiet", "no subscriber")])
        .await
        .unwrap();
    assert!(!changes.has_changed().unwrap(), "nothing was queued");

    store.commit(forward("out", "m1")).await.unwrap();
    assert!(changes.has_changed().unwrap(), "a forward was queued");
    changes.borrow_and_update();

    store
        .create_subscription(push_subscription("feed"))
        .await
        .unwrap();
    changes.borrow_and_update();
    store.append(vec![text("feed", "pushed")]).await.unwrap();
    assert!(changes.has_changed().unwrap(), "a push was queued");
    changes.borrow_and_update();

    store
        .append(vec![text("quiet", "still none")])
        .await
        .unwrap();
    assert!(!changes.has_changed().unwrap());
    store.close().await;
}

#[tokio::test]
async fn writes_and_commits_at_once_share_the_writer_and_all_land() {
    let dir = TempDir::new("writes");
    let store = Arc::new(open(&dir).await);
    store
        .create_subscription(push_subscription("feed"))
        .await
        .unwrap();
    let statuses = [SubscriptionStatus::Paused, SubscriptionStatus::Active];
    let tasks: Vec<_> = (0..64)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                if n % 2 == 0 {
                    store
                        .append(vec![text("feed", &n.to_string())])
                        .await
                        .map(|_| ())
                } else {
                    store
                        .set_subscription_status("sub-feed", statuses[n % 4 / 2])
                        .await
                        .map(|changed| assert!(changed))
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let page = store.poll(query("feed", None, None, 100)).await.unwrap();
    assert_eq!(page.blocks.len(), 32);
    assert!(
        store.commits() < 64,
        "writes rode on shared commits: {} commits",
        store.commits()
    );
    // Paused or not when each block came, the subscriber has them all.
    assert!(
        store
            .set_subscription_status("sub-feed", SubscriptionStatus::Active)
            .await
            .unwrap()
    );
    let due = store
        .claim_due(Timestamp::from_unix(4_000_000_000, 0), 100)
        .await
        .unwrap();
    assert_eq!(due.len(), 32, "every block queued for the subscriber");
    match Arc::try_unwrap(store) {
        Ok(store) => store.close().await,
        Err(_) => panic!("the store is still shared"),
    }
}
