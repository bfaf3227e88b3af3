//! Filling a fresh okno with the demo company through its own API, the way an administrator
//! and an integrator would:
//!
//! ```text
//!  1C's webhook subscription ─ the five Telegram channels (polling the simulated Telegram)
//!  ─ the example bots on them (pointed at the simulated 1C) ─ the example rules and surveys
//!  ─ the people as contacts ─ each person's link code sent to their bots as `/start CODE`
//!  ─ wait until every link has become an identity
//! ```

use std::collections::HashMap;
use std::time::Duration;

use okno_domain::{Error, Result};
use okno_onec_sim::OneCSim;
use okno_telegram_sim::TelegramSim;
use serde_json::{json, Value};

use crate::api::Api;
use crate::cast::{self, PersonSpec, BOTS, GROUP, PEOPLE, RULES, SURVEYS};

/// What the demo company is in this okno: the ids okno gave it.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// Bot key → channel id.
    pub channels: HashMap<&'static str, String>,
    /// Person key → contact id.
    pub contacts: HashMap<&'static str, String>,
    /// The surveys as (name, id), in the order of `examples/surveys`.
    pub surveys: Vec<(String, String)>,
}

/// The okno webhook events the simulated 1C subscribes to.
pub const HOOK_EVENTS: &[&str] = &["button.pressed", "task.claimed", "survey.answered"];

/// How long the people's link codes may take to become identities.
const LINK_WAIT: Duration = Duration::from_secs(60);

fn setup_failed(what: &str, e: Error) -> Error {
    Error::internal(format!("setting up the demo: {what}: {}", e.message))
}

/// The contact attributes 1C keeps for a person.
fn attrs(p: &PersonSpec, today: jiff::civil::Date) -> Value {
    match p.key {
        // Hired three days ago: the "7th day" survey is due in four days (start it by hand).
        "ivanova" => {
            let hired = today.checked_sub(jiff::Span::new().days(3)).unwrap_or(today);
            json!({"position": "Продавец-консультант", "hired_on": hired.to_string()})
        }
        "romashka" => json!({"company": "ООО «Ромашка»", "tz": "Asia/Yekaterinburg"}),
        "petrov" => json!({"position": "Менеджер по продажам"}),
        "orlov" => json!({"position": "Директор"}),
        "sokolov" | "popov" => json!({"position": "Курьер"}),
        "smirnov" => json!({"position": "Специалист ИТ"}),
        "kozlov" => json!({"position": "Руководитель ИТ"}),
        "volkova" => json!({"position": "Закупщик"}),
        "morozova" => json!({"position": "Специалист по кадрам"}),
        _ => json!({}),
    }
}

/// Builds the company in okno. `hook_secret` is what 1C checks okno's webhooks with.
pub async fn populate(api: &Api, sim: &TelegramSim, onec: &OneCSim, hook_secret: &str) -> Result<World> {
    let mut world = World::default();
    api.post("/webhooks", &json!({"url": onec.webhook_url(), "events": HOOK_EVENTS, "secret": hook_secret}))
        .await?
        .ok("subscribing the simulated 1C to okno's webhooks")
        .map_err(|e| setup_failed("webhooks", e))?;

    for bot in BOTS {
        sim.try_add_bot(bot.token, bot.username)
            .map_err(|e| Error::internal(format!("setting up the demo: the simulated bot @{}: {e}", bot.username)))?;
        let config = json!({"token": bot.token, "api_base": sim.api_base(), "mode": "polling"});
        let ch = api
            .post("/channels", &json!({"kind": "telegram", "name": bot.title, "config": config}))
            .await?
            .ok(&format!("connecting @{}", bot.username))
            .map_err(|e| setup_failed("channels", e))?;
        let id = ch["id"].as_str().unwrap_or_default().to_string();
        if let Some((file, definition)) = bot.definition {
            api.put_raw(&format!("/bots/{id}"), "application/yaml", &onec.bind(definition))
                .await?
                .ok(&format!("loading examples/bots/{file}"))
                .map_err(|e| setup_failed("bots", e))?;
        }
        world.channels.insert(bot.key, id);
    }
    let group_bot = cast::bot(GROUP.bot).ok_or_else(|| Error::internal("the cast's group names an unknown bot"))?;
    sim.try_group(group_bot.token, GROUP.chat_id, GROUP.title)
        .map_err(|e| Error::internal(format!("setting up the demo: the couriers' group: {e}")))?;

    for (file, text) in RULES {
        let rule: Value = serde_json::from_str(text)
            .map_err(|e| Error::internal(format!("examples/rules/{file} is not JSON: {e}")))?;
        api.post("/rules", &rule).await?.ok(&format!("examples/rules/{file}")).map_err(|e| setup_failed("rules", e))?;
    }
    for (file, text) in SURVEYS {
        let survey: Value = serde_json::from_str(text)
            .map_err(|e| Error::internal(format!("examples/surveys/{file} is not JSON: {e}")))?;
        let made = api
            .post("/surveys", &survey)
            .await?
            .ok(&format!("examples/surveys/{file}"))
            .map_err(|e| setup_failed("surveys", e))?;
        let name = made["name"].as_str().unwrap_or(file).to_string();
        world.surveys.push((name, made["id"].as_str().unwrap_or_default().to_string()));
    }

    let today = onec.today();
    for p in PEOPLE {
        let Some(external_id) = p.external_id else { continue };
        let body = json!({"external_id": external_id, "name": p.name, "phone": p.phone, "groups": p.groups,
                          "attrs": attrs(p, today)});
        let c = api.post("/contacts", &body).await?.ok(p.name).map_err(|e| setup_failed("contacts", e))?;
        world.contacts.insert(p.key, c["id"].as_str().unwrap_or_default().to_string());
    }
    link_everyone(api, sim, &world).await?;
    Ok(world)
}

/// Each person's link code, sent by the person to each of their bots — the flow a real
/// employee follows with the code HR hands out. One bot after the other, each linked before the
/// next, so the bot linked last is the one okno writes to them on (the last they wrote to); the
/// people link at the same time.
async fn link_everyone(api: &Api, sim: &TelegramSim, world: &World) -> Result<()> {
    let links = PEOPLE.iter().filter_map(|p| world.contacts.get(p.key).map(|c| link_person(api, sim, world, p, c)));
    for outcome in futures::future::join_all(links).await {
        outcome?;
    }
    Ok(())
}

async fn link_person(api: &Api, sim: &TelegramSim, world: &World, p: &PersonSpec, contact: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + LINK_WAIT;
    for key in p.linked {
        let bot = cast::bot(key).ok_or_else(|| Error::internal(format!("the cast names an unknown bot {key}")))?;
        let channel = world.channels.get(key).ok_or_else(|| Error::internal(format!("no channel for {key}")))?;
        let link = api
            .post(&format!("/contacts/{contact}/link"), &json!({}))
            .await?
            .ok(&format!("a link code for {}", p.name))
            .map_err(|e| setup_failed("link codes", e))?;
        let code = link["code"].as_str().unwrap_or_default();
        let sent = sim
            .try_user(bot.token, p.tg_id, p.name)
            .map(|u| u.with_username(p.username))
            .and_then(|u| u.try_send_text(&format!("/start {code}")));
        sent.map_err(|e| Error::internal(format!("setting up the demo: {} starting @{}: {e}", p.name, bot.username)))?;
        loop {
            let c = api.get(&format!("/contacts/{contact}")).await?.ok(p.name)?;
            let linked =
                c["identities"].as_array().into_iter().flatten().any(|i| i["channel_id"].as_str() == Some(channel));
            if linked {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::internal(format!(
                    "setting up the demo: {} sent a link code to @{}, but okno did not link them within {}s",
                    p.name,
                    bot.username,
                    LINK_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}
