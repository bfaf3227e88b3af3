//! The demo company «Стройторг» — a building-materials shop running on 1C — as data: its bots,
//! its couriers' group, its people (exactly the ones the sample events of `examples/events`
//! name, and a few more for the other scenarios), and the example files the demo loads.

/// One bot of the company: a Telegram channel of okno, with an example bot definition or none.
#[derive(Debug)]
pub struct BotSpec {
    /// The short name the phone page and the API of the demo use.
    pub key: &'static str,
    /// The token the simulated Telegram knows it by (Telegram-shaped, not a real one).
    pub token: &'static str,
    /// Its @username.
    pub username: &'static str,
    /// The channel's name in okno and the chat's title on the phone.
    pub title: &'static str,
    /// The example bot definition it runs (`examples/bots/…`), if any.
    pub definition: Option<(&'static str, &'static str)>,
}

/// The company's bots.
pub const BOTS: &[BotSpec] = &[
    BotSpec {
        key: "shop",
        token: "7100000001:DEMO-stroytorg-shop",
        username: "stroytorg_shop_bot",
        title: "Стройторг · магазин",
        definition: Some(("order_status.yaml", include_str!("../../../examples/bots/order_status.yaml"))),
    },
    BotSpec {
        key: "staff",
        token: "7100000002:DEMO-stroytorg-staff",
        username: "stroytorg_staff_bot",
        title: "Стройторг · сотрудникам",
        definition: Some(("employee.yaml", include_str!("../../../examples/bots/employee.yaml"))),
    },
    BotSpec {
        key: "hr",
        token: "7100000003:DEMO-stroytorg-hr",
        username: "stroytorg_hr_bot",
        title: "Стройторг · личный кабинет",
        definition: Some(("self_service.yaml", include_str!("../../../examples/bots/self_service.yaml"))),
    },
    BotSpec {
        key: "help",
        token: "7100000004:DEMO-stroytorg-help",
        username: "stroytorg_help_bot",
        title: "Стройторг · поддержка",
        definition: Some(("support.yaml", include_str!("../../../examples/bots/support.yaml"))),
    },
    BotSpec {
        key: "tasks",
        token: "7100000005:DEMO-stroytorg-tasks",
        username: "stroytorg_tasks_bot",
        title: "Стройторг · задачи",
        definition: None,
    },
];

/// The couriers' group chat, where the tasks bot posts tasks.
pub const GROUP: GroupSpec = GroupSpec {
    key: "couriers",
    chat_id: -1_001_000_000_001,
    title: "Курьеры Стройторга",
    bot: "tasks",
    members: &["sokolov", "popov"],
};

/// A group chat of the company's Telegram.
#[derive(Debug)]
pub struct GroupSpec {
    /// The short name the phone page uses.
    pub key: &'static str,
    /// Its Telegram chat id.
    pub chat_id: i64,
    /// Its title.
    pub title: &'static str,
    /// The bot that is a member of it.
    pub bot: &'static str,
    /// The people in it.
    pub members: &'static [&'static str],
}

/// A person of the demo: a Telegram user, and (for all but a walk-in customer) a contact of
/// the business system linked to their Telegram through okno's link codes.
#[derive(Debug)]
pub struct PersonSpec {
    /// The short name the phone page uses.
    pub key: &'static str,
    /// Their Telegram user id (the same on every bot, as on Telegram).
    pub tg_id: i64,
    /// Their name, as Telegram shows it and as the business system knows it.
    pub name: &'static str,
    /// Their @username.
    pub username: &'static str,
    /// The i18n key of their role ("manager", "courier"…) and of what to try as them.
    pub role: &'static str,
    /// The business system's id; `None` for a walk-in customer unknown to it.
    pub external_id: Option<&'static str>,
    /// Their contact groups (access groups of the bots, rule and broadcast audiences).
    pub groups: &'static [&'static str],
    /// Their phone, if the business system has it.
    pub phone: Option<&'static str>,
    /// The bots they have linked their Telegram on (with a link code, at the demo's start), in
    /// that order: okno writes to them on the last one.
    pub linked: &'static [&'static str],
}

/// The people, in the order the phone page lists them.
pub const PEOPLE: &[PersonSpec] = &[
    PersonSpec {
        key: "petrov",
        tg_id: 100_001,
        name: "Пётр Петров",
        username: "petrov_sales",
        role: "manager",
        external_id: Some("1c-manager-petrov"),
        groups: &["Сотрудники", "Менеджеры", "Продавцы"],
        phone: Some("+7 912 600-10-01"),
        linked: &["staff"],
    },
    PersonSpec {
        key: "romashka",
        tg_id: 100_002,
        name: "Ольга Ромашкина",
        username: "olga_romashka",
        role: "client",
        external_id: Some("1c-client-romashka"),
        groups: &["Клиенты"],
        phone: Some("+7 343 200-10-20"),
        linked: &["shop"],
    },
    PersonSpec {
        key: "belova",
        tg_id: 100_003,
        name: "Наталья Белова",
        username: "natalia_b",
        role: "customer",
        external_id: None,
        groups: &[],
        phone: None,
        linked: &[],
    },
    PersonSpec {
        key: "ivanova",
        tg_id: 100_004,
        name: "Анна Иванова",
        username: "anna_ivanova",
        role: "employee",
        external_id: Some("1c-employee-ivanova"),
        groups: &["Сотрудники", "Продавцы"],
        phone: Some("+7 912 600-10-04"),
        linked: &["hr", "help", "staff"],
    },
    PersonSpec {
        key: "orlov",
        tg_id: 100_005,
        name: "Андрей Орлов",
        username: "orlov_director",
        role: "director",
        external_id: Some("1c-director-orlov"),
        groups: &["Сотрудники", "Директор", "Руководители"],
        phone: Some("+7 912 600-10-05"),
        linked: &["staff"],
    },
    PersonSpec {
        key: "sokolov",
        tg_id: 100_006,
        name: "Дмитрий Соколов",
        username: "sokolov_courier",
        role: "courier",
        external_id: Some("1c-courier-sokolov"),
        groups: &["Курьеры"],
        phone: Some("+7 912 600-10-06"),
        linked: &["tasks"],
    },
    PersonSpec {
        key: "popov",
        tg_id: 100_007,
        name: "Сергей Попов",
        username: "popov_courier",
        role: "courier",
        external_id: Some("1c-courier-popov"),
        groups: &["Курьеры"],
        phone: Some("+7 912 600-10-07"),
        linked: &["tasks"],
    },
    PersonSpec {
        key: "smirnov",
        tg_id: 100_008,
        name: "Кирилл Смирнов",
        username: "smirnov_it",
        role: "it",
        external_id: Some("1c-it-smirnov"),
        groups: &["Сотрудники", "ИТ"],
        phone: Some("+7 912 600-10-08"),
        linked: &["staff"],
    },
    PersonSpec {
        key: "kozlov",
        tg_id: 100_009,
        name: "Олег Козлов",
        username: "kozlov_it",
        role: "it_head",
        external_id: Some("1c-it-head-kozlov"),
        groups: &["Сотрудники", "ИТ", "Руководители"],
        phone: Some("+7 912 600-10-09"),
        linked: &["staff"],
    },
    PersonSpec {
        key: "volkova",
        tg_id: 100_010,
        name: "Елена Волкова",
        username: "volkova_buyer",
        role: "buyer",
        external_id: Some("1c-buyer-volkova"),
        groups: &["Сотрудники", "закупки"],
        phone: Some("+7 912 600-10-10"),
        linked: &["staff"],
    },
    PersonSpec {
        key: "morozova",
        tg_id: 100_011,
        name: "Светлана Морозова",
        username: "morozova_hr",
        role: "hr",
        external_id: Some("1c-hr-morozova"),
        groups: &["Сотрудники", "Отдел кадров"],
        phone: Some("+7 912 600-10-11"),
        linked: &["staff"],
    },
];

/// A file of `examples/`: its name and content, built into the binary.
pub type Example = (&'static str, &'static str);

/// `examples/rules`, every file (a test checks none is missing).
pub const RULES: &[Example] = &[
    ("01_payment_received.json", include_str!("../../../examples/rules/01_payment_received.json")),
    ("02_order_blocked.json", include_str!("../../../examples/rules/02_order_blocked.json")),
    ("03_expense_status.json", include_str!("../../../examples/rules/03_expense_status.json")),
    ("04_order_shipped.json", include_str!("../../../examples/rules/04_order_shipped.json")),
    ("05_critical_it_request.json", include_str!("../../../examples/rules/05_critical_it_request.json")),
    ("06_stock_below_minimum.json", include_str!("../../../examples/rules/06_stock_below_minimum.json")),
    ("07_rate_the_service.json", include_str!("../../../examples/rules/07_rate_the_service.json")),
    ("08_visit_reminder.json", include_str!("../../../examples/rules/08_visit_reminder.json")),
    ("09_vacation_requested.json", include_str!("../../../examples/rules/09_vacation_requested.json")),
    ("order_stage.json", include_str!("../../../examples/rules/order_stage.json")),
];

/// `examples/events`, every file (a test checks none is missing).
pub const EVENTS: &[Example] = &[
    ("01_payment_received.json", include_str!("../../../examples/events/01_payment_received.json")),
    ("02_order_blocked.json", include_str!("../../../examples/events/02_order_blocked.json")),
    ("03_expense_status.json", include_str!("../../../examples/events/03_expense_status.json")),
    ("04_order_shipped.json", include_str!("../../../examples/events/04_order_shipped.json")),
    ("05_critical_it_request.json", include_str!("../../../examples/events/05_critical_it_request.json")),
    ("06_stock_below_minimum.json", include_str!("../../../examples/events/06_stock_below_minimum.json")),
    ("07_order_completed.json", include_str!("../../../examples/events/07_order_completed.json")),
    ("08_visit_booked.json", include_str!("../../../examples/events/08_visit_booked.json")),
    ("09_vacation_requested.json", include_str!("../../../examples/events/09_vacation_requested.json")),
    ("order_stage_changed.json", include_str!("../../../examples/events/order_stage_changed.json")),
];

/// `examples/surveys`, every file (a test checks none is missing).
pub const SURVEYS: &[Example] = &[
    ("01_adaptation_day7.json", include_str!("../../../examples/surveys/01_adaptation_day7.json")),
    ("02_adaptation_day45.json", include_str!("../../../examples/surveys/02_adaptation_day45.json")),
    ("03_exit_survey.json", include_str!("../../../examples/surveys/03_exit_survey.json")),
    ("04_nps_after_order.json", include_str!("../../../examples/surveys/04_nps_after_order.json")),
];

/// `examples/tasks/task.json`: the sample task the console posts to the couriers' group.
pub const TASK: &str = include_str!("../../../examples/tasks/task.json");

/// The bot with this key.
pub fn bot(key: &str) -> Option<&'static BotSpec> {
    BOTS.iter().find(|b| b.key == key)
}

/// The person with this key.
pub fn person(key: &str) -> Option<&'static PersonSpec> {
    PEOPLE.iter().find(|p| p.key == key)
}

/// The person the business system knows by this id.
pub fn person_by_external_id(id: &str) -> Option<&'static PersonSpec> {
    PEOPLE.iter().find(|p| p.external_id == Some(id))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use serde_json::Value;

    fn listing(dir: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(dir);
        let mut names: Vec<String> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        names
    }

    fn names(list: &[Example]) -> Vec<String> {
        let mut n: Vec<String> = list.iter().map(|(f, _)| f.to_string()).collect();
        n.sort();
        n
    }

    #[test]
    fn the_demo_loads_every_example_file() {
        assert_eq!(names(RULES), listing("rules"), "a rule in examples/rules is missing from the demo");
        assert_eq!(names(EVENTS), listing("events"), "an event in examples/events is missing from the demo");
        assert_eq!(names(SURVEYS), listing("surveys"), "a survey in examples/surveys is missing from the demo");
        let bots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bots");
        let mut files: Vec<String> =
            std::fs::read_dir(bots).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        let mut loaded: Vec<String> = BOTS.iter().filter_map(|b| b.definition.map(|(f, _)| f.to_string())).collect();
        loaded.sort();
        assert_eq!(loaded, files, "every example bot runs on a bot of the demo");
    }

    #[test]
    fn every_person_a_sample_event_names_is_in_the_demo() {
        for (file, text) in EVENTS {
            let event: Value = serde_json::from_str(text).unwrap();
            for (rule_file, rule_text) in RULES {
                let rule: Value = serde_json::from_str(rule_text).unwrap();
                if rule["event"] != event["type"] {
                    continue;
                }
                for r in rule["recipients"].as_array().unwrap() {
                    if let Some(t) = r["external_id"].as_str() {
                        let field =
                            t.trim_start_matches("{{").trim_end_matches("}}").trim().trim_start_matches("data.");
                        let id = event["data"][field].as_str().unwrap_or_else(|| panic!("{file} lacks {field}"));
                        assert!(
                            person_by_external_id(id).is_some(),
                            "{file} (rule {rule_file}) names {id}, nobody in the demo"
                        );
                    }
                    if let Some(g) = r["group"].as_str() {
                        assert!(
                            PEOPLE.iter().any(|p| p.groups.contains(&g) && !p.linked.is_empty()),
                            "{file} (rule {rule_file}) goes to the group {g}, which has nobody linked in the demo"
                        );
                    }
                }
            }
        }
        // The surveys an event starts find their recipient too.
        for (file, text) in SURVEYS {
            let survey: Value = serde_json::from_str(text).unwrap();
            if survey["trigger"]["kind"] != "event" {
                continue;
            }
            let (_, event) = EVENTS
                .iter()
                .find(|(_, e)| serde_json::from_str::<Value>(e).unwrap()["type"] == survey["trigger"]["event"])
                .unwrap_or_else(|| panic!("{file}: no sample event starts it"));
            let event: Value = serde_json::from_str(event).unwrap();
            let t = survey["trigger"]["recipient"]["external_id"].as_str().unwrap();
            let field = t.trim_start_matches("{{").trim_end_matches("}}").trim().trim_start_matches("data.");
            assert!(person_by_external_id(event["data"][field].as_str().unwrap()).is_some(), "{file}");
        }
    }

    #[test]
    fn the_cast_holds_together() {
        let mut keys: Vec<&str> = PEOPLE.iter().map(|p| p.key).collect();
        let mut ids: Vec<i64> = PEOPLE.iter().map(|p| p.tg_id).collect();
        keys.sort_unstable();
        keys.dedup();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!((keys.len(), ids.len()), (PEOPLE.len(), PEOPLE.len()), "unique keys and Telegram ids");
        for p in PEOPLE {
            for b in p.linked {
                assert!(bot(b).is_some(), "{} is linked on an unknown bot {b}", p.key);
            }
            assert!(p.linked.is_empty() || p.external_id.is_some(), "{}: only a contact can be linked", p.key);
        }
        assert!(GROUP.members.len() >= 2, "a task group needs two people to race");
        for m in GROUP.members {
            let p = person(m).unwrap();
            assert!(p.linked.contains(&GROUP.bot), "{m} gets the task's details from the group's bot");
            assert!(p.groups.contains(&"Курьеры"), "{m} may take the sample task (its group is Курьеры)");
        }
        let task: Value = serde_json::from_str(TASK).unwrap();
        assert_eq!(task["group"], "Курьеры");
    }
}
