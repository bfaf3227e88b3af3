//! The platforms okno speaks: the one place a new channel kind is listed. Each is a crate
//! under `crates/channels/` implementing `okno_channel::Platform`.

use std::sync::Arc;

use okno_engine::Platforms;

/// Every platform this build of okno carries.
pub fn platforms() -> Platforms {
    Platforms::new([
        Arc::new(okno_channel_telegram::Telegram) as Arc<dyn okno_channel::Platform>,
        Arc::new(okno_channel_max::Max),
        Arc::new(okno_channel_vk::Vk),
        Arc::new(okno_channel_ok::Odnoklassniki),
        Arc::new(okno_channel_sms::Sms),
        Arc::new(okno_channel_webhook::Webhook),
        Arc::new(okno_channel_avito::Avito::default()),
        Arc::new(okno_channel_whatsapp::WhatsApp),
        Arc::new(okno_channel_viber::Viber),
        Arc::new(okno_channel_email::Email::default()),
        Arc::new(okno_channel_widget::Widget::default()),
    ])
}
