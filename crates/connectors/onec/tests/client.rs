//! The OData client against the 1C simulator: people read with their contacts, pages and
//! filters sent the way 1C reads them, 1C's refusals told apart, and incremental pulls that
//! hand on only what changed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use okno_connector_onec::{Change, FieldMap, ODataClient, ODataError, PageRequest, Person, Query, SyncCursor};
use okno_onec_sim::{ContactInfo, ContactKind, OneCSim, COUNTERPARTIES, EMPLOYEES};

async fn infobase() -> (OneCSim, ODataClient) {
    let sim = OneCSim::start().await.unwrap();
    let (user, password) = sim.odata_credentials();
    let client = ODataClient::new(&format!("{}/", sim.odata_url()), &user, &password).unwrap();
    (sim, client)
}

fn upserted(changes: &[Change]) -> Vec<(String, bool, bool)> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Upserted { person, new } => Some((person.description.clone(), *new, person.deletion_mark)),
            Change::Removed { .. } => None,
        })
        .collect()
}

fn removed(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Removed { ref_key } => Some(ref_key.clone()),
            Change::Upserted { .. } => None,
        })
        .collect()
}

#[tokio::test]
async fn counterparties_are_read_as_people_with_phones_and_emails() {
    let (sim, client) = infobase().await;
    client.check().await.unwrap();
    let key = sim.add_counterparty(
        "ООО «Ромашка»",
        &[
            ContactInfo::phone("8 (916) 123-45-67"),
            ContactInfo::presentation_only(ContactKind::Phone, "+7 495 765-43-21 доб. 12"),
            ContactInfo::email("Office@Romashka.ru"),
            ContactInfo::address("г. Москва, ул. Тверская, 7"),
        ],
    );
    sim.add_counterparty_group("Покупатели");
    let people = client.persons(&FieldMap::counterparties(), PageRequest::nth(0, 10)).await.unwrap();
    assert_eq!(people.len(), 1, "a group is no person: {people:?}");
    let p = &people[0];
    assert_eq!(p.ref_key, key);
    assert_eq!((p.code.as_str(), p.description.as_str()), ("000000001", "ООО «Ромашка»"));
    assert_eq!(p.phones, vec!["+79161234567", "+74957654321"]);
    assert_eq!(p.emails, vec!["office@romashka.ru"]);

    // What went over the wire: JSON asked for, the Cyrillic set name encoded, spaces as %20.
    let r = sim.odata_requests().into_iter().find(|r| r.path == "Catalog_Контрагенты").unwrap();
    assert_eq!((r.q("$format"), r.q("allowedOnly"), r.q("$orderby")), ("json", "true", "Ref_Key"));
    assert_eq!(r.q("$filter"), "IsFolder eq false");
    assert!(r.raw_query.contains("IsFolder%20eq%20false") && !r.raw_query.contains('+'), "{}", r.raw_query);
    assert!(r.q("$select").split(',').any(|f| f == "КонтактнаяИнформация"));
    assert_eq!(r.user, "Интеграция");

    let employees = FieldMap::employees();
    sim.add_employee("Иванова Анна", &[ContactInfo::email("anna@shop.ru")]);
    let staff = client.persons(&employees, PageRequest::nth(0, 10)).await.unwrap();
    assert_eq!(staff.iter().map(|p| p.emails.clone()).collect::<Vec<_>>(), vec![vec!["anna@shop.ru".to_string()]]);
}

#[tokio::test]
async fn pages_filters_and_single_objects() {
    let (sim, client) = infobase().await;
    let mut keys: Vec<String> = (1..=7).map(|n| sim.add_counterparty(&format!("Клиент {n}"), &[])).collect();
    keys.sort();
    let mut got = Vec::new();
    for n in 0.. {
        let page = client.catalog(COUNTERPARTIES, Some("DeletionMark eq false"), PageRequest::nth(n, 3)).await.unwrap();
        got.extend(page.iter().map(|r| r["Ref_Key"].as_str().unwrap().to_string()));
        if page.len() < 3 {
            break;
        }
    }
    assert_eq!(got, keys, "pages in Ref_Key order, none lost or repeated");

    let query = Query {
        filter: Some(format!("Description eq {}", okno_connector_onec::quote("Клиент 3"))),
        select: vec!["Code".into()],
        ..Query::default()
    };
    let found = client.query(COUNTERPARTIES, &query).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].keys().collect::<Vec<_>>(), ["Code"]);
    let one = client.object(COUNTERPARTIES, &keys[0]).await.unwrap();
    assert_eq!(one["Ref_Key"], keys[0].as_str());
    let few = client.by_keys(COUNTERPARTIES, &[&keys[1], &keys[2]], "", &[]).await.unwrap();
    assert_eq!(few.len(), 2);
}

#[tokio::test]
async fn refusals_are_told_apart() {
    let (sim, client) = infobase().await;
    let bad = client.catalog(COUNTERPARTIES, Some("Code eq"), PageRequest::nth(0, 5)).await.unwrap_err();
    assert!(
        matches!(&bad, ODataError::Invalid { code, message } if code == "14" && message.contains("$filter")),
        "{bad:?}"
    );
    assert!(!bad.is_passing());
    let unknown = client.catalog(COUNTERPARTIES, Some("Телефон eq '1'"), PageRequest::nth(0, 5)).await.unwrap_err();
    assert!(matches!(&unknown, ODataError::Invalid { code, .. } if code == "6"), "{unknown:?}");
    let unpublished = client.catalog("Catalog_Номенклатура", None, PageRequest::nth(0, 5)).await.unwrap_err();
    assert!(
        matches!(&unpublished, ODataError::NotFound { what, .. } if what == "Catalog_Номенклатура"),
        "{unpublished:?}"
    );
    let missing = client.object(EMPLOYEES, "00000000-0000-0000-0000-000000000001").await.unwrap_err();
    assert!(matches!(missing, ODataError::NotFound { .. }));
    assert!(matches!(client.object(EMPLOYEES, "x' or 1 eq 1").await, Err(ODataError::Invalid { .. })));

    let stranger = ODataClient::new(&sim.odata_url(), "Интеграция", "wrong").unwrap();
    let refused = stranger.check().await.unwrap_err();
    assert!(matches!(refused, ODataError::Unauthorized { status: 401, .. }), "{refused:?}");
    assert!(!refused.is_passing());

    sim.odata_failing(Some(503));
    let down = client.persons(&FieldMap::counterparties(), PageRequest::nth(0, 5)).await.unwrap_err();
    assert!(down.is_passing(), "{down:?}");
    sim.odata_failing(None);

    let gone = ODataClient::new("http://127.0.0.1:9/odata/standard.odata", "a", "b").unwrap();
    assert!(gone.check().await.unwrap_err().is_passing());
    assert!(ODataClient::new("ftp://x", "a", "b").is_err());
}

#[tokio::test]
async fn a_pull_hands_on_only_what_changed() {
    let (sim, client) = infobase().await;
    let map = FieldMap::counterparties();
    let anna = sim.add_counterparty("Анна", &[ContactInfo::phone("+7 900 000-00-01")]);
    let boris = sim.add_counterparty("Борис", &[]);
    let vera = sim.add_counterparty("Вера", &[]);

    // The first pull reads everyone.
    let first = client.pull_paged(&map, &SyncCursor::default(), 2).await.unwrap();
    assert_eq!(first.changes.len(), 3);
    assert!(upserted(&first.changes).iter().all(|(_, new, _)| *new));
    assert_eq!(first.cursor.len(), 3);
    // The cursor is what the engine stores: text, read back the same.
    let stored = first.cursor.encode();
    let cursor = SyncCursor::decode(&stored).unwrap();

    // Nothing changed: nothing handed on, and only the scan was read.
    let before = sim.odata_requests().len();
    let quiet = client.pull_paged(&map, &cursor, 2).await.unwrap();
    assert!(quiet.changes.is_empty(), "{:?}", quiet.changes);
    let scan: Vec<_> = sim.odata_requests().into_iter().skip(before).collect();
    assert!(scan.iter().all(|r| r.q("$select") == "Ref_Key,DataVersion"), "{scan:?}");
    assert_eq!(scan.len(), 2, "two pages of two");

    // An edit, a new person, a deletion mark, a deletion for good, a write changing nothing.
    sim.set_contacts(COUNTERPARTIES, &anna, &[ContactInfo::phone("+7 900 000-00-02")]);
    let galina = sim.add_counterparty("Галина", &[ContactInfo::email("galina@example.org")]);
    sim.mark_for_deletion(COUNTERPARTIES, &boris, true);
    sim.delete_record(COUNTERPARTIES, &vera);
    let next = client.pull_paged(&map, &quiet.cursor, 2).await.unwrap();
    let mut changed = upserted(&next.changes);
    changed.sort();
    assert_eq!(
        changed,
        vec![("Анна".into(), false, false), ("Борис".into(), false, true), ("Галина".into(), true, false)]
    );
    assert_eq!(removed(&next.changes), vec![vera.clone()]);
    let anna_now: &Person = next
        .changes
        .iter()
        .find_map(|c| match c {
            Change::Upserted { person, .. } if person.ref_key == anna => Some(person),
            _ => None,
        })
        .unwrap();
    assert_eq!(anna_now.phones, vec!["+79000000002"]);
    assert!(next.cursor.knows(&galina, "AAAAAAAAAAA="));
    assert_eq!(next.cursor.len(), 3);

    // Handed on: the next pull is quiet again.
    assert!(client.pull_paged(&map, &next.cursor, 2).await.unwrap().changes.is_empty());
    // A stored cursor that is not lost: the same changes come again (at least once).
    let again = client.pull_paged(&map, &quiet.cursor, 2).await.unwrap();
    assert_eq!(again.changes.len(), next.changes.len());
}

#[tokio::test]
async fn an_object_missed_by_a_shifting_page_is_not_taken_for_deleted() {
    let (sim, client) = infobase().await;
    let map = FieldMap::employees();
    for n in 0..5 {
        sim.add_employee(&format!("Сотрудник {n}"), &[]);
    }
    let mut keys: Vec<String> =
        sim.records(EMPLOYEES).iter().map(|r| r["Ref_Key"].as_str().unwrap().to_string()).collect();
    keys.sort();
    let first = client.pull_paged(&map, &SyncCursor::default(), 2).await.unwrap();

    // The first object is deleted right after the first page: the next page starts one later,
    // so the scan never sees the third object.
    sim.delete_after_requests(EMPLOYEES, &keys[0], 1);
    let before = sim.odata_requests().len();
    let then = client.pull_paged(&map, &first.cursor, 2).await.unwrap();
    assert!(then.changes.is_empty(), "the missed one is still there, the deleted one was seen: {:?}", then.changes);
    let v2 = sim.record(EMPLOYEES, &keys[2]).unwrap()["DataVersion"].as_str().unwrap().to_string();
    assert!(then.cursor.knows(&keys[2], &v2), "asked about, found, kept");
    let asked = sim.odata_requests().into_iter().skip(before).filter(|r| r.q("$filter").contains(&keys[2])).count();
    assert_eq!(asked, 1);

    // The next pull finds the deletion.
    let after = client.pull_paged(&map, &then.cursor, 2).await.unwrap();
    assert_eq!(removed(&after.changes), vec![keys[0].clone()]);
    assert!(upserted(&after.changes).is_empty());
}
