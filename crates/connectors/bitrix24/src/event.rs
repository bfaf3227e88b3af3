//! The events a portal posts to okno: `application/x-www-form-urlencoded` bodies whose keys are
//! PHP bracket paths (`event=ONCRMDEALUPDATE&data[FIELDS][ID]=759&ts=…&auth[application_token]=…`),
//! read into a tree and then into the events okno acts on.
//!
//! A portal signs nothing: what proves an event is the portal's is `auth[application_token]`,
//! the token the portal gave okno's application (or outgoing webhook) — check it with
//! [`Envelope::comes_from`] before acting. Nothing here panics on any input.

use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::wire::{int, int_at, items, text, text_at};

use okno_domain::form::{FormError, MAX_PAIRS};

/// Why a body is not a Bitrix24 event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the body has more than {MAX_PAIRS} fields")]
    TooLarge,
    #[error("`{0}` is not a bracket path")]
    BadKey(String),
    #[error("the body names no event")]
    NoEvent,
    #[error("{event} lacks {field}")]
    Missing { event: String, field: &'static str },
}

/// A form body as a tree of objects and strings (see [`okno_domain::form`]).
pub fn tree(body: &[u8]) -> Result<Map<String, Value>, EventError> {
    okno_domain::form::bracket_tree(body).map_err(|e| match e {
        FormError::TooLarge => EventError::TooLarge,
        FormError::BadKey(k) => EventError::BadKey(k),
    })
}

/// The CRM records whose events okno reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrmEntity {
    Contact,
    Company,
    Deal,
    Lead,
}

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Updated,
    Deleted,
}

/// An operator's message for the customer (`ONIMCONNECTORMESSAGEADD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorMessage {
    /// The portal's ids, for the delivery and reading receipts.
    pub chat_id: i64,
    pub message_id: i64,
    /// The operator.
    pub user_id: Option<i64>,
    /// The text with its BB-codes (`[b]…[/b]`, `[br]`).
    pub text: String,
    /// okno's conversation (`chat.id` as okno sent it).
    pub external_chat: String,
    /// Files: name and address.
    pub files: Vec<(String, String)>,
}

/// A dialog the operator closed (`ONIMCONNECTORDIALOGFINISH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedDialog {
    pub session_id: Option<i64>,
    pub chat_id: Option<i64>,
    pub external_chat: Option<String>,
    pub external_user: Option<String>,
}

/// A call that ended (`ONVOXIMPLANTCALLEND`); the record itself comes from
/// `voximplant.statistic.get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEnd {
    pub call_id: String,
    pub call_type: Option<i64>,
    pub phone_number: Option<String>,
    pub portal_user_id: Option<i64>,
    pub duration: Option<i64>,
    pub start_date: Option<String>,
    pub failed_code: Option<String>,
    pub crm_activity_id: Option<i64>,
}

/// What okno acts on in an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A contact, company, deal or lead was added, changed or deleted (`ONCRM{KIND}{CHANGE}`);
    /// okno reads the record itself.
    Crm { entity: CrmEntity, change: Change, id: i64 },
    /// A smart-process item (`ONCRMDYNAMICITEM{ADD,UPDATE,DELETE}`).
    Item { entity_type_id: i64, id: i64, change: Change },
    /// Operators wrote to customers through okno's connector.
    ConnectorMessages { connector: String, line: i64, messages: Vec<OperatorMessage> },
    /// Dialogs were closed.
    DialogFinished { connector: String, line: i64, dialogs: Vec<FinishedDialog> },
    /// The connector was disconnected from a line.
    ConnectorRemoved { connector: String, line: i64 },
    /// A call ended.
    CallEnded(CallEnd),
    /// An event okno does not act on.
    Other,
}

/// The `auth[…]` of an event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventAuth {
    pub domain: Option<String>,
    pub member_id: Option<String>,
    pub application_token: Option<String>,
    /// An application's events carry a fresh access token (not automation's).
    pub access_token: Option<String>,
    pub client_endpoint: Option<String>,
    pub user_id: Option<i64>,
}

/// An event as posted: its name, handler, time, `auth` and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Upper case, as the portal names events in its posts (`ONCRMDEALUPDATE`).
    pub name: String,
    pub handler_id: Option<i64>,
    pub ts: Option<i64>,
    pub auth: EventAuth,
    pub event: Event,
    /// `data[…]` as posted.
    pub data: Value,
}

impl Envelope {
    /// Whether the event carries `application_token` (compared in constant time).
    pub fn comes_from(&self, application_token: &str) -> bool {
        token_matches(self.auth.application_token.as_deref().unwrap_or_default(), application_token)
    }
}

/// `got == expected` in time independent of where they differ; an empty expectation matches
/// nothing.
pub fn token_matches(got: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(got.as_bytes().ct_eq(expected.as_bytes()))
}

/// Reads a posted body.
pub fn parse(body: &[u8]) -> Result<Envelope, EventError> {
    let t = tree(body)?;
    let name = t.get("event").and_then(text).map(|e| e.trim().to_ascii_uppercase()).filter(|e| !e.is_empty());
    let name = name.ok_or(EventError::NoEvent)?;
    let data = t.get("data").cloned().unwrap_or(Value::Null);
    let auth = t.get("auth").cloned().unwrap_or(Value::Null);
    let auth = EventAuth {
        domain: text_at(&auth, "domain"),
        member_id: text_at(&auth, "member_id"),
        application_token: text_at(&auth, "application_token"),
        access_token: text_at(&auth, "access_token"),
        client_endpoint: text_at(&auth, "client_endpoint"),
        user_id: int_at(&auth, "user_id"),
    };
    let missing = |field: &'static str| EventError::Missing { event: name.clone(), field };
    let event = read_event(&name, &data, missing)?;
    Ok(Envelope {
        handler_id: t.get("event_handler_id").and_then(int),
        ts: t.get("ts").and_then(int),
        name,
        auth,
        event,
        data,
    })
}

fn read_event(name: &str, data: &Value, missing: impl Fn(&'static str) -> EventError) -> Result<Event, EventError> {
    let change = |rest: &str| match rest {
        "ADD" => Some(Change::Added),
        "UPDATE" => Some(Change::Updated),
        "DELETE" => Some(Change::Deleted),
        _ => None,
    };
    let field = |k: &str| data.get(k).or_else(|| data.get(k.to_ascii_lowercase()));
    if let Some(rest) = name.strip_prefix("ONCRMDYNAMICITEM") {
        let Some(change) = change(rest) else { return Ok(Event::Other) };
        let id = data.pointer("/FIELDS/ID").and_then(int).ok_or_else(|| missing("data[FIELDS][ID]"))?;
        let entity_type_id = data
            .pointer("/FIELDS/ENTITY_TYPE_ID")
            .and_then(int)
            .ok_or_else(|| missing("data[FIELDS][ENTITY_TYPE_ID]"))?;
        return Ok(Event::Item { entity_type_id, id, change });
    }
    for (prefix, entity) in [
        ("ONCRMCONTACT", CrmEntity::Contact),
        ("ONCRMCOMPANY", CrmEntity::Company),
        ("ONCRMDEAL", CrmEntity::Deal),
        ("ONCRMLEAD", CrmEntity::Lead),
    ] {
        if let Some(change) = name.strip_prefix(prefix).and_then(change) {
            let id = data.pointer("/FIELDS/ID").and_then(int).ok_or_else(|| missing("data[FIELDS][ID]"))?;
            return Ok(Event::Crm { entity, change, id });
        }
    }
    let connector_line = || -> Result<(String, i64), EventError> {
        let connector = field("CONNECTOR").and_then(text).ok_or_else(|| missing("data[CONNECTOR]"))?;
        let line = field("LINE").and_then(int).ok_or_else(|| missing("data[LINE]"))?;
        Ok((connector, line))
    };
    Ok(match name {
        "ONIMCONNECTORMESSAGEADD" => {
            let (connector, line) = connector_line()?;
            let mut messages = Vec::new();
            for m in field("MESSAGES").map(items).unwrap_or_default() {
                let chat_id =
                    m.pointer("/im/chat_id").and_then(int).ok_or_else(|| missing("data[MESSAGES][][im][chat_id]"))?;
                let message_id = m
                    .pointer("/im/message_id")
                    .and_then(int)
                    .ok_or_else(|| missing("data[MESSAGES][][im][message_id]"))?;
                let files = m
                    .pointer("/message/files")
                    .map(items)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|f| {
                        Some((
                            text_at(f, "name").unwrap_or_default(),
                            text_at(f, "link").or_else(|| text_at(f, "url"))?,
                        ))
                    })
                    .collect();
                messages.push(OperatorMessage {
                    chat_id,
                    message_id,
                    user_id: m.pointer("/message/user_id").and_then(int),
                    text: m.pointer("/message/text").and_then(text).unwrap_or_default(),
                    external_chat: m.pointer("/chat/id").and_then(text).unwrap_or_default(),
                    files,
                });
            }
            Event::ConnectorMessages { connector, line, messages }
        }
        "ONIMCONNECTORDIALOGFINISH" => {
            let (connector, line) = connector_line()?;
            let dialogs = field("DATA")
                .map(items)
                .unwrap_or_default()
                .into_iter()
                .map(|d| FinishedDialog {
                    session_id: d.pointer("/session/id").and_then(int),
                    chat_id: d.pointer("/chat/id").and_then(int),
                    external_chat: d.pointer("/connector/chat_id").and_then(text),
                    external_user: d.pointer("/user/id").and_then(text),
                })
                .collect();
            Event::DialogFinished { connector, line, dialogs }
        }
        "ONIMCONNECTORSTATUSDELETE" => {
            let (connector, line) = connector_line()?;
            Event::ConnectorRemoved { connector, line }
        }
        "ONVOXIMPLANTCALLEND" => Event::CallEnded(CallEnd {
            call_id: text_at(data, "CALL_ID").ok_or_else(|| missing("data[CALL_ID]"))?,
            call_type: int_at(data, "CALL_TYPE"),
            phone_number: text_at(data, "PHONE_NUMBER"),
            portal_user_id: int_at(data, "PORTAL_USER_ID"),
            duration: int_at(data, "CALL_DURATION"),
            start_date: text_at(data, "CALL_START_DATE"),
            failed_code: text_at(data, "CALL_FAILED_CODE"),
            crm_activity_id: int_at(data, "CRM_ACTIVITY_ID"),
        }),
        _ => Event::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The documentation's `ONCRMDEALUPDATE`, as a portal posts it.
    const DEAL_UPDATE: &str = "event=ONCRMDEALUPDATE&event_handler_id=201&data%5BFIELDS%5D%5BID%5D=759&ts=1736405807\
        &auth%5Bdomain%5D=some-domain.bitrix24.com&auth%5Bclient_endpoint%5D=https%3A%2F%2Fsome-domain.bitrix24.com%2Frest%2F\
        &auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F&auth%5Bmember_id%5D=d897063e1ce7c5eb9f04b9751eef5915\
        &auth%5Bapplication_token%5D=jvh9y1ulvt2m6k5or90v9mg8nn32ozas";

    #[test]
    fn a_deal_update_reads_with_its_token() {
        let e = parse(DEAL_UPDATE.as_bytes()).unwrap();
        assert_eq!(e.event, Event::Crm { entity: CrmEntity::Deal, change: Change::Updated, id: 759 });
        assert_eq!((e.handler_id, e.ts), (Some(201), Some(1_736_405_807)));
        assert_eq!(e.auth.domain.as_deref(), Some("some-domain.bitrix24.com"));
        assert!(e.comes_from("jvh9y1ulvt2m6k5or90v9mg8nn32ozas"));
        assert!(!e.comes_from("jvh9y1ulvt2m6k5or90v9mg8nn32ozaX"));
        assert!(!e.comes_from(""), "no expectation matches nothing");
    }

    #[test]
    fn connector_dialog_call_and_item_events_read() {
        let msg = "event=ONIMCONNECTORMESSAGEADD&data[CONNECTOR]=okno&data[LINE]=107&data[MESSAGES][0][im][chat_id]=1807\
                   &data[MESSAGES][0][im][message_id]=86497&data[MESSAGES][0][message][user_id]=27\
                   &data[MESSAGES][0][message][text]=%5Bb%5DKlaus%3A%5B%2Fb%5D+%5Bbr%5DGuten+Tag!&data[MESSAGES][0][chat][id]=channel-123\
                   &data[MESSAGES][0][message][files][0][name]=a.pdf&data[MESSAGES][0][message][files][0][link]=https%3A%2F%2Fx%2Fa.pdf";
        let Event::ConnectorMessages { connector, line, messages } = parse(msg.as_bytes()).unwrap().event else {
            panic!()
        };
        assert_eq!((connector.as_str(), line), ("okno", 107));
        assert_eq!(
            messages,
            vec![OperatorMessage {
                chat_id: 1807,
                message_id: 86497,
                user_id: Some(27),
                text: "[b]Klaus:[/b] [br]Guten Tag!".into(),
                external_chat: "channel-123".into(),
                files: vec![("a.pdf".into(), "https://x/a.pdf".into())],
            }]
        );
        let finish =
            "event=ONIMCONNECTORDIALOGFINISH&data[CONNECTOR]=okno&data[LINE]=105&data[DATA][0][session][id]=3282\
                      &data[DATA][0][chat][id]=8&data[DATA][0][connector][chat_id]=c-1&data[DATA][0][user][id]=u-1";
        let Event::DialogFinished { dialogs, .. } = parse(finish.as_bytes()).unwrap().event else { panic!() };
        assert_eq!(dialogs[0].session_id, Some(3282));
        let gone = parse(b"event=ONIMCONNECTORSTATUSDELETE&data[connector]=okno&data[line]=107").unwrap();
        assert_eq!(gone.event, Event::ConnectorRemoved { connector: "okno".into(), line: 107 });
        let call =
            parse(b"event=ONVOXIMPLANTCALLEND&data[CALL_ID]=externalCall.1&data[CALL_TYPE]=1&data[CALL_DURATION]=95")
                .unwrap();
        assert!(matches!(call.event, Event::CallEnded(CallEnd { duration: Some(95), call_type: Some(1), .. })));
        let item =
            parse(b"event=ONCRMDYNAMICITEMUPDATE&data[FIELDS][ID]=24&data[FIELDS][ENTITY_TYPE_ID]=1220").unwrap();
        assert_eq!(item.event, Event::Item { entity_type_id: 1220, id: 24, change: Change::Updated });
        assert_eq!(parse(b"event=onAppInstall").unwrap().event, Event::Other);
    }

    #[test]
    fn broken_bodies_are_refused_clearly() {
        assert_eq!(parse(b"ts=1"), Err(EventError::NoEvent));
        assert!(matches!(parse(b"event=ONCRMDEALUPDATE"), Err(EventError::Missing { field: "data[FIELDS][ID]", .. })));
        assert!(matches!(parse(b"event=ONCRMDEALUPDATE&data[FIELDS][ID]=x"), Err(EventError::Missing { .. })));
        for bad in ["[a]=1", "a[b=1", "a]b[=1", "a[b]c=1", "=1"] {
            assert!(matches!(tree(bad.as_bytes()), Err(EventError::BadKey(_))), "{bad}");
        }
        let deep = format!("a{}=1", "[x]".repeat(okno_domain::form::MAX_DEPTH + 1));
        assert!(tree(deep.as_bytes()).is_err());
        assert_eq!(tree(b"a[]=1&a[]=2").unwrap()["a"]["1"], "2", "`[]` appends");
    }

    fn segment() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_]{1,8}"
    }

    proptest! {
        /// Any bytes: an event or a clear error, never a panic.
        #[test]
        fn any_body_is_read_or_refused(body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&body);
        }

        /// Any bracket-shaped text: never a panic.
        #[test]
        fn any_bracket_soup_is_read_or_refused(body in "[a-z\\[\\]=&%0-9]{0,200}") {
            let _ = parse(body.as_bytes());
        }

        /// Distinct bracket paths with any values come back as written.
        #[test]
        fn bracket_paths_round_trip(entries in proptest::collection::btree_map(
            (segment(), segment(), segment()), "\\PC{0,30}", 1..20)) {
            let mut f = url::form_urlencoded::Serializer::new(String::new());
            for ((a, b, c), v) in &entries {
                f.append_pair(&format!("r{a}[{b}][{c}]"), v);
            }
            let t = tree(f.finish().as_bytes()).unwrap();
            for ((a, b, c), v) in &entries {
                prop_assert_eq!(t[&format!("r{a}")][b][c].as_str(), Some(v.as_str()));
            }
        }

        /// A CRM event comes back as sent, and only its own token matches.
        #[test]
        fn crm_events_round_trip(kind in 0usize..4, change in 0usize..3, id in 1i64..i64::MAX,
                                 token in "[a-z0-9]{32}", other in "[a-z0-9]{32}") {
            let (prefix, entity) = [("CONTACT", CrmEntity::Contact), ("COMPANY", CrmEntity::Company),
                                    ("DEAL", CrmEntity::Deal), ("LEAD", CrmEntity::Lead)][kind];
            let (suffix, ch) = [("ADD", Change::Added), ("UPDATE", Change::Updated), ("DELETE", Change::Deleted)][change];
            let mut f = url::form_urlencoded::Serializer::new(String::new());
            f.append_pair("event", &format!("ONCRM{prefix}{suffix}"));
            f.append_pair("data[FIELDS][ID]", &id.to_string());
            f.append_pair("auth[application_token]", &token);
            let e = parse(f.finish().as_bytes()).unwrap();
            prop_assert_eq!(&e.event, &Event::Crm { entity, change: ch, id });
            prop_assert!(e.comes_from(&token));
            prop_assert_eq!(e.comes_from(&other), token == other);
        }

        /// An operator's message comes back with its ids and any text.
        #[test]
        fn operator_messages_round_trip(connector in "[a-z0-9_]{1,20}", line in 1i64..100_000,
                                        chat in 1i64..i64::MAX, message in 1i64..i64::MAX,
                                        body in "\\PC{0,200}", external in "\\PC{1,40}") {
            let mut f = url::form_urlencoded::Serializer::new(String::new());
            f.append_pair("event", "ONIMCONNECTORMESSAGEADD");
            f.append_pair("data[CONNECTOR]", &connector);
            f.append_pair("data[LINE]", &line.to_string());
            f.append_pair("data[MESSAGES][0][im][chat_id]", &chat.to_string());
            f.append_pair("data[MESSAGES][0][im][message_id]", &message.to_string());
            f.append_pair("data[MESSAGES][0][message][text]", &body);
            f.append_pair("data[MESSAGES][0][chat][id]", &external);
            let e = parse(f.finish().as_bytes()).unwrap();
            let Event::ConnectorMessages { connector: c, line: l, messages } = e.event else {
                return Err(TestCaseError::fail("not a connector message"));
            };
            prop_assert_eq!((c, l, messages.len()), (connector, line, 1));
            prop_assert_eq!((messages[0].chat_id, messages[0].message_id), (chat, message));
            prop_assert_eq!(&messages[0].text, &body);
            prop_assert_eq!(&messages[0].external_chat, &external);
        }
    }
}
