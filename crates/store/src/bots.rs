//! What the bot engine keeps: bot definitions, each user's place in a bot, news, and the
//! relayed-question feed.

use async_trait::async_trait;

use crate::sql::SqlStore;

/// The bot engine's storage.
#[async_trait]
pub trait BotStore: Send + Sync + 'static {}

#[async_trait]
impl BotStore for SqlStore {}
