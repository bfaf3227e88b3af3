//! The admin page's form for connecting a business system: the fields a kind asks for, in
//! both languages, and the configuration a filled form makes (the same the API takes).

use okno_domain::model::ConnectorKind;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// How a field is typed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Input {
    Text,
    Url,
    Number,
    /// Never shown back.
    Secret,
    /// One of okno's channels that can carry tasks to a group.
    Channel,
}

/// One field of a kind's form. `name` is the configuration key; `task.x` is a key of the one
/// stage task the form can name (more through the API).
#[derive(Debug, Clone, Serialize)]
pub struct Field {
    pub name: &'static str,
    pub en: &'static str,
    pub ru: &'static str,
    pub input: Input,
    pub required: bool,
    pub help_en: &'static str,
    pub help_ru: &'static str,
}

const fn field(name: &'static str, en: &'static str, ru: &'static str, input: Input, required: bool) -> Field {
    Field { name, en, ru, input, required, help_en: "", help_ru: "" }
}

const AMOCRM: &[Field] = &[
    Field {
        help_en: "https://<subdomain>.amocrm.ru",
        help_ru: "https://<поддомен>.amocrm.ru",
        ..field("api_base", "Account address", "Адрес аккаунта", Input::Url, true)
    },
    Field {
        help_en: "amoCRM → Settings → Integrations → your private integration → Keys and access → long-lived token",
        help_ru: "amoCRM → Настройки → Интеграции → ваша частная интеграция → Ключи и доступы → долгосрочный токен",
        ..field("token", "Long-lived token", "Долгосрочный токен", Input::Secret, true)
    },
    Field {
        help_en: "A deal moved to this stage (its status id) becomes a task for the group",
        help_ru: "Сделка, перешедшая на этот этап (id статуса), становится задачей для группы",
        ..field("task.status_id", "Stage that posts a task", "Этап, который ставит задачу", Input::Number, false)
    },
    field("task.pipeline_id", "Pipeline (id, optional)", "Воронка (id, необязательно)", Input::Number, false),
    field("task.channel_id", "Channel of the group", "Канал группы", Input::Channel, false),
    Field {
        help_en: "The group chat's id, e.g. -1001234567890 in Telegram",
        help_ru: "Id группового чата, например -1001234567890 в Telegram",
        ..field("task.chat_id", "Group chat", "Групповой чат", Input::Text, false)
    },
    field("task.group", "Only members of contact group", "Только участники группы контактов", Input::Text, false),
    field("task.taken_status_id", "Stage once taken (id)", "Этап после взятия (id)", Input::Number, false),
];

const BITRIX24: &[Field] = &[
    Field {
        help_en: "Bitrix24 → Developer resources → Other → Inbound webhook (scopes crm, user, telephony): https://<portal>/rest/<user>/<code>/",
        help_ru: "Битрикс24 → Разработчикам → Другое → Входящий вебхук (права на CRM, пользователей и телефонию)",
        ..field("webhook_url", "Inbound webhook address", "Адрес входящего вебхука", Input::Secret, true)
    },
    Field {
        help_en: "Of the outgoing webhook (event ONCRMDEALUPDATE, address shown after connecting); empty: okno takes no posts",
        help_ru: "Исходящего вебхука на изменение сделки (адрес покажется после подключения); пусто — okno не принимает события",
        ..field("application_token", "Application token", "Токен приложения", Input::Secret, false)
    },
    Field {
        help_en: "A deal moved to this stage (its STAGE_ID, e.g. PREPARATION or C1:NEW) becomes a task for the group",
        help_ru: "Сделка, перешедшая на эту стадию (её код из настроек воронки), становится задачей для группы",
        ..field("task.stage_id", "Stage that posts a task", "Стадия, которая ставит задачу", Input::Text, false)
    },
    field("task.channel_id", "Channel of the group", "Канал группы", Input::Channel, false),
    Field {
        help_en: "The group chat's id, e.g. -1001234567890 in Telegram",
        help_ru: "Id группового чата, например -1001234567890 в Telegram",
        ..field("task.chat_id", "Group chat", "Групповой чат", Input::Text, false)
    },
    field("task.group", "Only members of contact group", "Только участники группы контактов", Input::Text, false),
    field("task.taken_stage_id", "Stage once taken (STAGE_ID)", "Стадия после взятия (код)", Input::Text, false),
];

const PBX: &[Field] = &[Field {
    help_en: "At least 16 characters; the PBX signs each post with it (X-Okno-Signature, HMAC-SHA256)",
    help_ru: "Не короче 16 символов; АТС подписывает им каждый запрос (HMAC-SHA256)",
    ..field("signing_secret", "Signing secret", "Секрет подписи", Input::Secret, true)
}];

const ONEC: &[Field] = &[
    Field {
        help_en: "https://<server>/<base>/odata/standard.odata — published in the Configurator (Administration → Publish to a web server, with OData)",
        help_ru: "https://<сервер>/<база>/odata/standard.odata — публикация базы на веб-сервере с OData",
        ..field("api_base", "OData address", "Адрес OData", Input::Url, true)
    },
    field("user", "1C user", "Пользователь 1С", Input::Text, true),
    field("password", "Password", "Пароль", Input::Secret, false),
    Field {
        help_en: "Counterparties are read; employees and other catalogs through the API",
        help_ru: "Читаются контрагенты; сотрудники и другие справочники — через API",
        ..field("every", "Read every (seconds)", "Читать каждые (секунд)", Input::Number, false)
    },
];

/// The kinds the admin page connects, in its order.
pub const KINDS: &[ConnectorKind] =
    &[ConnectorKind::Amocrm, ConnectorKind::Bitrix24, ConnectorKind::Onec, ConnectorKind::Pbx];

/// The fields of a kind's form; empty for a kind connected through the API only.
pub fn fields(kind: ConnectorKind) -> &'static [Field] {
    match kind {
        ConnectorKind::Amocrm => AMOCRM,
        ConnectorKind::Bitrix24 => BITRIX24,
        ConnectorKind::Pbx => PBX,
        ConnectorKind::Onec => ONEC,
    }
}

/// The configuration a filled form makes: empty fields left out, numbers as numbers, the
/// stage task's keys as the one entry of `tasks` when its stage is given.
pub fn config(kind: ConnectorKind, value: impl Fn(&str) -> Option<String>) -> Value {
    let mut config = Map::new();
    let mut task = Map::new();
    for f in fields(kind) {
        let Some(v) = value(f.name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) else { continue };
        let v = match f.input {
            Input::Number => v.parse::<i64>().map_or(json!(v), |n| json!(n)),
            _ => json!(v),
        };
        match f.name.strip_prefix("task.") {
            Some(key) => task.insert(key.to_string(), v),
            None => config.insert(f.name.to_string(), v),
        };
    }
    if task.contains_key("status_id") || task.contains_key("stage_id") {
        config.insert("tasks".into(), Value::Array(vec![Value::Object(task)]));
    }
    Value::Object(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filled_form_is_the_configuration_the_api_takes() {
        let typed = |name: &str| -> Option<String> {
            match name {
                "api_base" => Some(" https://r.amocrm.ru ".into()),
                "token" => Some("t".into()),
                "task.status_id" => Some("20".into()),
                "task.channel_id" => Some("ch1".into()),
                "task.chat_id" => Some("-1001".into()),
                "task.group" => Some("".into()),
                "task.taken_status_id" => Some("30".into()),
                _ => None,
            }
        };
        assert_eq!(
            config(ConnectorKind::Amocrm, typed),
            json!({"api_base": "https://r.amocrm.ru", "token": "t",
                   "tasks": [{"status_id": 20, "channel_id": "ch1", "chat_id": "-1001", "taken_status_id": 30}]})
        );
        let no_stage = |name: &str| (name == "api_base" || name == "task.chat_id").then(|| "x".to_string());
        assert_eq!(config(ConnectorKind::Amocrm, no_stage), json!({"api_base": "x"}), "no stage: no task");
        let b24 = |name: &str| -> Option<String> {
            match name {
                "webhook_url" => Some("https://p.bitrix24.ru/rest/1/abc/".into()),
                "task.stage_id" => Some("PREPARATION".into()),
                "task.channel_id" => Some("ch1".into()),
                "task.chat_id" => Some("-1001".into()),
                "task.taken_stage_id" => Some("EXECUTING".into()),
                _ => None,
            }
        };
        assert_eq!(
            config(ConnectorKind::Bitrix24, b24),
            json!({"webhook_url": "https://p.bitrix24.ru/rest/1/abc/",
                   "tasks": [{"stage_id": "PREPARATION", "channel_id": "ch1", "chat_id": "-1001", "taken_stage_id": "EXECUTING"}]}),
            "a stage id stays text"
        );
    }
}
