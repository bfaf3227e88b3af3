//! The OData interface over real HTTP: 1C's JSON shapes, its query options, its errors, Basic
//! auth, DataVersion on every write, and the request log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use okno_onec_sim::{ContactInfo, OneCSim, Options, COUNTERPARTIES, EMPLOYEES};
use serde_json::{json, Value};

/// `GET {odata}/{path_and_query}` (already encoded) as the interface's user.
async fn get(sim: &OneCSim, path_and_query: &str) -> (u16, Value) {
    let (user, password) = sim.odata_credentials();
    let r = reqwest::Client::new()
        .get(format!("{}/{path_and_query}", sim.odata_url()))
        .basic_auth(user, Some(password))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn enc(s: &str) -> String {
    s.replace('%', "%25").replace(' ', "%20").replace('&', "%26")
}

const SET: &str = "Catalog_%D0%9A%D0%BE%D0%BD%D1%82%D1%80%D0%B0%D0%B3%D0%B5%D0%BD%D1%82%D1%8B";

#[tokio::test]
async fn counterparties_come_in_1c_s_json_with_their_contact_information() {
    let sim = OneCSim::start().await.unwrap();
    let key = sim.add_counterparty(
        "ООО «Ромашка»",
        &[ContactInfo::phone("8 (916) 123-45-67"), ContactInfo::email("office@romashka.ru")],
    );
    sim.add_counterparty_group("Покупатели");

    let (status, page) = get(&sim, &format!("{SET}?$format=json")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page["odata.metadata"].as_str().unwrap().ends_with("/odata/standard.odata/$metadata#Catalog_Контрагенты"));
    let first = &page["value"][0];
    assert_eq!(first["Ref_Key"], key);
    assert_eq!(first["DataVersion"], "AAAAAAAAAAA=", "a new object's version");
    assert_eq!((first["DeletionMark"].clone(), first["IsFolder"].clone()), (json!(false), json!(false)));
    assert_eq!(first["Code"], "000000001");
    assert_eq!(first["Parent_Key"], "00000000-0000-0000-0000-000000000000");
    let rows = first["КонтактнаяИнформация"].as_array().unwrap();
    assert_eq!(rows[0]["LineNumber"], "1", "Int64 is text in 1C's JSON");
    assert_eq!((rows[0]["Тип"].as_str(), rows[0]["НомерТелефона"].as_str()), (Some("Телефон"), Some("79161234567")));
    assert_eq!(rows[0]["НомерТелефонаБезКодов"], "1234567");
    assert_eq!(
        (rows[1]["Тип"].as_str(), rows[1]["АдресЭП"].as_str()),
        (Some("АдресЭлектроннойПочты"), Some("office@romashka.ru"))
    );
    assert_eq!(page["value"][1]["IsFolder"], true);

    let (status, one) = get(&sim, &format!("{SET}(guid'{}')?$format=json", key.to_uppercase())).await;
    assert_eq!(status, 200);
    assert_eq!(one["Description"], "ООО «Ромашка»");
    assert!(one["odata.metadata"].as_str().unwrap().ends_with("#Catalog_Контрагенты/@Element"));
    let (status, none) = get(&sim, &format!("{SET}(guid'00000000-0000-0000-0000-000000000001')?$format=json")).await;
    assert_eq!((status, none["odata.error"]["code"].as_str()), (404, Some("9")));
}

#[tokio::test]
async fn query_options_filter_select_order_and_page() {
    let sim = OneCSim::start().await.unwrap();
    let keys: Vec<String> = ["Бета", "Альфа", "Гамма", "Дельта"].iter().map(|n| sim.add_counterparty(n, &[])).collect();
    sim.mark_for_deletion(COUNTERPARTIES, &keys[2], true);
    sim.add_counterparty_group("Группа");

    let q = enc("$format=json&$filter=DeletionMark eq false and IsFolder eq false&$select=Ref_Key,Description&$orderby=Description desc&$top=2&$skip=1&$inlinecount=allpages&allowedOnly=true");
    let (status, page) = get(&sim, &format!("{SET}?{}", q.replace("%26", "&"))).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["odata.count"], "3", "the count before paging, as text");
    let names: Vec<&str> =
        page["value"].as_array().unwrap().iter().map(|r| r["Description"].as_str().unwrap()).collect();
    assert_eq!(names, ["Бета", "Альфа"], "Дельта skipped, Гамма marked");
    assert_eq!(page["value"][0].as_object().unwrap().len(), 2, "only the selected fields");

    let by_key = enc(&format!("$format=json&$filter=Ref_Key eq guid'{}' or Ref_Key eq guid'{}'", keys[0], keys[3]));
    let (_, page) = get(&sim, &format!("{SET}?{}", by_key.replace("%26", "&"))).await;
    assert_eq!(page["value"].as_array().unwrap().len(), 2);
    let sub = enc("$format=json&$filter=substringof('ЛЬФ', Description)");
    let (_, page) = get(&sim, &format!("{SET}?{}", sub.replace("%26", "&"))).await;
    assert_eq!(page["value"][0]["Description"], "Альфа");

    // Without $format, 1C answers Atom XML.
    let (status, atom) = get(&sim, SET).await;
    assert_eq!(status, 200);
    assert!(atom.as_str().unwrap().starts_with("<?xml") && atom.as_str().unwrap().contains("<d:Description>Бета"));
}

#[tokio::test]
async fn requests_1c_cannot_read_get_1c_s_errors() {
    let sim = OneCSim::start().await.unwrap();
    sim.add_counterparty("Альфа", &[]);
    for (query, status, code) in [
        ("$format=json&$filter=DeletionMark+eq+false", 400, "14"),
        ("$format=json&$filter=Code%20eq", 400, "14"),
        ("$format=json&$filter=Ref_Key%20eq%20'x'", 400, "14"),
        ("$format=json&$filter=%D0%98%D0%9D%D0%9D%D0%A5%20eq%20'1'", 400, "6"),
        ("$format=json&$select=Ref_Key,Nope", 400, "6"),
        ("$format=json&$orderby=Nope", 400, "6"),
        ("$format=json&$top=-1", 400, "14"),
        ("$format=json&$skip=x", 400, "14"),
        ("$format=json&$frobnicate=1", 400, "14"),
    ] {
        let (got, body) = get(&sim, &format!("{SET}?{query}")).await;
        assert_eq!((got, body["odata.error"]["code"].as_str()), (status, Some(code)), "{query}: {body}");
        assert_eq!(body["odata.error"]["message"]["lang"], "ru");
    }
    let (status, body) =
        get(&sim, "Catalog_%D0%9D%D0%BE%D0%BC%D0%B5%D0%BD%D0%BA%D0%BB%D0%B0%D1%82%D1%83%D1%80%D0%B0?$format=json")
            .await;
    assert_eq!(status, 404);
    assert_eq!(body["odata.error"]["message"]["value"], "Сегмент пути Catalog_Номенклатура не найден!");
    let log = sim.odata_requests();
    assert_eq!(log[0].q("$filter"), "DeletionMark+eq+false", "a + stays a plus");
    assert!(log.iter().all(|r| r.status >= 400));
}

#[tokio::test]
async fn basic_auth_is_required_and_a_cyrillic_user_name_is_utf8() {
    let sim = OneCSim::start().await.unwrap();
    let url = format!("{}/{SET}?$format=json", sim.odata_url());
    let http = reqwest::Client::new();
    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let wrong = http.get(&url).basic_auth("Интеграция", Some("nope")).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let (user, password) = sim.odata_credentials();
    assert_eq!(user, "Интеграция");
    assert_eq!(http.get(&url).basic_auth(&user, Some(&password)).send().await.unwrap().status(), 200);
    assert_eq!(
        sim.odata_requests().iter().map(|r| r.user.as_str()).collect::<Vec<_>>(),
        ["", "Интеграция", "Интеграция"]
    );

    let other = OneCSim::start_with(Options::default()).await.unwrap();
    other.set_odata_credentials("okno", "s3cret");
    assert_eq!(other.odata_credentials(), ("okno".to_string(), "s3cret".to_string()));
    let (status, meta) = get(&other, "$metadata").await;
    assert_eq!(status, 200);
    let meta = meta.as_str().unwrap();
    assert!(
        meta.contains("<EntitySet Name=\"Catalog_Контрагенты\"")
            && meta.contains("Catalog_Сотрудники_КонтактнаяИнформация_RowType")
    );
}

#[tokio::test]
async fn every_write_gives_a_new_data_version() {
    let sim = OneCSim::start().await.unwrap();
    let key = sim.add_employee("Иванова Анна", &[ContactInfo::phone("+7 900 111-22-33")]);
    let version = |sim: &OneCSim| sim.record(EMPLOYEES, &key).unwrap()["DataVersion"].as_str().unwrap().to_string();
    let mut seen = vec![version(&sim)];
    assert!(sim.change_record(EMPLOYEES, &key, json!({"Description": "Иванова Анна Петровна", "Ref_Key": "x"})));
    seen.push(version(&sim));
    assert!(sim.touch(EMPLOYEES, &key), "a write that changes nothing");
    seen.push(version(&sim));
    assert!(sim.mark_for_deletion(EMPLOYEES, &key, true));
    seen.push(version(&sim));
    assert!(sim.set_contacts(EMPLOYEES, &key, &[ContactInfo::email("anna@shop.ru")]));
    seen.push(version(&sim));
    assert_eq!(seen, ["AAAAAAAAAAA=", "AAAAAAAAAAE=", "AAAAAAAAAAI=", "AAAAAAAAAAM=", "AAAAAAAAAAQ="]);
    let r = sim.record(EMPLOYEES, &key).unwrap();
    assert_eq!((r["Ref_Key"].as_str(), r["DeletionMark"].as_bool()), (Some(key.as_str()), Some(true)));
    assert!(sim.delete_record(EMPLOYEES, &key));
    assert!(sim.record(EMPLOYEES, &key).is_none());
    assert!(!sim.touch(EMPLOYEES, &key));
}

#[tokio::test]
async fn a_failing_web_server_and_writes_are_answered_as_such() {
    let sim = OneCSim::start().await.unwrap();
    sim.odata_failing(Some(503));
    let (status, body) = get(&sim, &format!("{SET}?$format=json")).await;
    assert_eq!(status, 503);
    assert!(body.as_str().unwrap().starts_with("<html>"));
    sim.odata_failing(None);
    let (user, password) = sim.odata_credentials();
    let post = reqwest::Client::new()
        .post(format!("{}/{SET}?$format=json", sim.odata_url()))
        .basic_auth(user, Some(password))
        .json(&json!({"Description": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    // The bots' HTTP service is untouched by all this.
    assert!(sim.requests().is_empty());
}
