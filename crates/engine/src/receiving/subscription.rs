//! Opting out of broadcasts and back in: a person writes a stop word alone in a private chat
//! («стоп», «отписаться»…) or presses a broadcast's "unsubscribe" button, and is told what it
//! means; «подписаться» brings them back. Read here, before the message is recorded; the store
//! applies the change and queues the answer in the message's transaction, so an acknowledged
//! «стоп» is never lost between the two.

use okno_channel::InboundMessage;
use okno_store::{SubscriptionChange, UNSUBSCRIBE};

/// Words that opt a person out of broadcasts when sent alone, and words that opt them back in.
const STOP_WORDS: &[&str] = &["стоп", "stop", "отписаться", "unsubscribe", "/stop", "/unsubscribe"];
const START_WORDS: &[&str] = &["подписаться", "subscribe", "/subscribe"];

const OPTED_OUT: &str = "Вы отписались от рассылок. Важные уведомления по вашим заказам будут приходить по-прежнему. \
                         Чтобы снова получать рассылки, напишите «подписаться».";
const OPTED_IN: &str = "Вы снова подписаны на рассылки.";

/// The subscription change a message asks for, if any.
pub(crate) fn asked(msg: &InboundMessage) -> Option<SubscriptionChange> {
    let change = |subscribed: bool| {
        Some(SubscriptionChange { subscribed, answer: if subscribed { OPTED_IN } else { OPTED_OUT }.to_string() })
    };
    if let Some(data) = &msg.button_data {
        let value = data.strip_prefix("answer:").unwrap_or(data);
        return if value == UNSUBSCRIBE { change(false) } else { None };
    }
    if msg.sender.is_group {
        return None;
    }
    let word = msg.text.as_deref()?.trim().trim_end_matches(['.', '!']).to_lowercase();
    if STOP_WORDS.contains(&word.as_str()) {
        change(false)
    } else if START_WORDS.contains(&word.as_str()) {
        change(true)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(text: &str, group: bool) -> Option<bool> {
        let mut m = okno_store::testing::inbound_text("ch", "u", "m", text);
        m.sender.is_group = group;
        asked(&m).map(|c| c.subscribed)
    }

    #[test]
    fn stop_and_start_words_alone_in_private_change_the_subscription() {
        assert_eq!(said("Стоп", false), Some(false));
        assert_eq!(said("  отписаться! ", false), Some(false));
        assert_eq!(said("/stop", false), Some(false));
        assert_eq!(said("Подписаться.", false), Some(true));
        assert_eq!(said("стоп", true), None, "a stop word in a group opts nobody out");
        assert_eq!(said("стоп, а где заказ?", false), None, "only alone");
        assert_eq!(said("остановка", false), None);
    }

    #[test]
    fn an_unsubscribe_press_opts_out_and_is_answered() {
        let mut m = okno_store::testing::inbound_text("ch", "u", "m", "");
        m.text = None;
        m.button_data = Some(UNSUBSCRIBE.into());
        let change = asked(&m).expect("opted out");
        assert!(!change.subscribed);
        assert!(change.answer.starts_with("Вы отписались"), "{}", change.answer);
        m.button_data = Some("answer:5".into());
        assert_eq!(asked(&m), None);
        m.sender.is_group = true;
        m.button_data = Some(format!("answer:{UNSUBSCRIBE}"));
        assert!(asked(&m).is_some(), "a press is the person's, in a group too");
    }
}
